"""The end-to-end pipeline: `fairforge pipeline run pipelines.yaml`."""
