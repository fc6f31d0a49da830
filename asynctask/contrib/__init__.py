"""Integrations with other frameworks, each imported only by the programs that use it (Django:
``asynctask.contrib.django``). Nothing in ``asynctask`` itself imports from here."""
