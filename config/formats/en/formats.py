"""Dates and times in the console: one unambiguous form everywhere (ISO-like, 24-hour, with the
time zone's abbreviation), in the workspace's time zone (accounts/middleware.py activates it)."""

DATE_FORMAT = "Y-m-d"
DATETIME_FORMAT = "Y-m-d H:i T"
TIME_FORMAT = "H:i"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
FIRST_DAY_OF_WEEK = 1  # Monday
