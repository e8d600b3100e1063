"""The dashboard at ``/ui``: sessions (:mod:`.sessions`), page shells (:mod:`.pages`),
routes (:mod:`.routes`) and the assets under ``static/`` (:mod:`.static_files`)."""
