"""The MLTrack Airflow plugin (registered through the ``airflow.plugins`` entry point only)."""
