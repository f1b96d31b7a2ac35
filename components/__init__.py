"""fxemu components: audio I/O, signal processing, default data and the audio ExampleGen."""
