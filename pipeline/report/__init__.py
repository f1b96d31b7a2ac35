"""The HTML run report: scoring of the test recordings (:mod:`pipeline.report.evaluation`,
shared with the benchmarks), the page (:mod:`pipeline.report.run_report`, Jinja2 template
``templates/report.html``) and its figures (:mod:`pipeline.report.plots`)."""
