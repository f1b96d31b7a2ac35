"""fxemu trainer package."""
