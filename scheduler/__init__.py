"""The scheduler process: a clocked loop that will fire cron triggers."""
