"""fxemu pipeline package."""
