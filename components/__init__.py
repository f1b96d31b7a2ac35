"""fxemu components: the TFX components (AudioExampleGen, AnomaliesGate, ServingCheck,
AtomicPusher). The audio library is :mod:`components.audio`, the default data set
generator :mod:`components.datagen`."""
