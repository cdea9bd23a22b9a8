"""Operator views (status, cost, optimize, report): pure functions over plain cluster facts."""
