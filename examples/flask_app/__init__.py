"""A Flask app that offloads work to a detached asynctask daemon (``app.py``), and the work
(``tasks.py``). Run it from the repository root, where the daemon's workers find
``examples.flask_app.tasks``::

    asynctask daemon --detach
    flask --app examples.flask_app.app run
"""
