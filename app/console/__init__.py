"""The web console (issue 17): the cluster's GPUs, the decisions behind them and what they cost, on one
page at /ui. `view.py` is the pure view model, `collect.py` the thin read of the running components,
`templates/` and `static/` the page (Jinja2, plain CSS and JavaScript: no build step)."""
