from django.db import models


class RateCounter(models.Model):
    """Requests counted for one throttle key (scope and client) in its current window.

    The throttles of every process and host count here (unless REDIS_URL is set), one
    statement per block of requests a process claims: `core.throttling.count_requests`.
    """

    key = models.CharField(max_length=200, primary_key=True)
    # The window's number: seconds since the epoch divided by the window's length.
    window_number = models.BigIntegerField()
    count = models.PositiveIntegerField()

    class Meta:
        ordering = ["key"]

    def __str__(self):
        return f"{self.key}: {self.count} in window {self.window_number}"
