"""fxemu kubeflow package."""
