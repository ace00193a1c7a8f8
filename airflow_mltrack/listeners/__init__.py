"""Listeners: experiment status follows task and DAG-run state (``status``)."""
