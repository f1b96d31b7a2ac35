"""Running a trained model on audio: block planning, the local and REST backends
(:mod:`pipeline.inference.apply`) and the TF Serving-compatible server
(:mod:`pipeline.inference.serve`)."""
