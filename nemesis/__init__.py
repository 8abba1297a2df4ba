"""Fault choices and schedules (what and when), independent of any platform."""
