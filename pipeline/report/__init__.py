"""The HTML run report (:mod:`pipeline.report.run_report`) and its figures
(:mod:`pipeline.report.plots`)."""
