"""fxemu schema package."""
