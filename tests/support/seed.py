"""Facts of seed 002 that several tests hold our schema to."""

from __future__ import annotations

# The 15 named indexes of seed 002, in its order.
SEED_INDEXES: tuple[str, ...] = (
    "idx_projects_name",
    "idx_projects_status",
    "idx_datasets_project_id",
    "idx_datasets_name_version",
    "idx_datasets_data_type",
    "idx_models_project_id",
    "idx_models_name_version",
    "idx_models_framework",
    "idx_experiments_project_id",
    "idx_experiments_model_id",
    "idx_experiments_dataset_id",
    "idx_experiments_status",
    "idx_metrics_experiment_id",
    "idx_metrics_name",
    "idx_metrics_evaluation_set",
)
