"""Offline evaluation: measuring the guards on labelled datasets (``bastion guard eval``,
the benches) and their latency. Nothing here runs on the request path; the runtime
guards (:mod:`bastion.guards`) never import it."""
