"""A FastAPI app that offloads work to a detached asynctask daemon (``main.py``), and the work
(``tasks.py``). Run it from the repository root, where the daemon's workers find
``examples.fastapi_app.tasks``::

    asynctask daemon --detach
    uvicorn examples.fastapi_app.main:app
"""
