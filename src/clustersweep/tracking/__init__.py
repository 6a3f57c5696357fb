"""MLflow: the store, what identifies a run, and the one way a run is opened, filled and closed (`runs`)."""
