from django.db import models


class Note(models.Model):
    """A note; the workers fill in ``words`` and ``summary`` after it is saved."""

    text = models.TextField()
    words = models.IntegerField(null=True)
    summary = models.CharField(max_length=200, blank=True)
    # what the last task found at its start: whether the worker's connection was already open
    connection_was_open = models.BooleanField(null=True)
