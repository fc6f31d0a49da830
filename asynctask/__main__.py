from asynctask.cli.entry import main

main()
