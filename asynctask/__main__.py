from asynctask.cli.main import main

main()
