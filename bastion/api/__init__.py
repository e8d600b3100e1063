"""The admin API under ``/api``: traces, stats and feedback (``traces``), virtual keys
(``keys``), the audit log (``audit``), data subject requests (``users``). Each module
gives its endpoint table to :mod:`bastion.gateway.routes`; authentication and roles are
checked before, in ``Gateway.handle``, and team isolation inside each handler."""
