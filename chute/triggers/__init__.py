"""chute.triggers: what starts workflows besides a user: CronWorkflow schedules
(:mod:`chute.triggers.cron`) and HMAC-verified webhooks (:mod:`chute.triggers.webhook`).
Every trigger submits through :func:`chute.engine.submit.submit_once` with a key naming
its occasion (schedule slot, delivery id), so a replayed occasion makes one run."""
