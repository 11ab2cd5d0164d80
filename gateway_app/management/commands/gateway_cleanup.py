"""
``manage.py gateway_cleanup``: delete stored sessions past ``SESSION_RETENTION_DAYS`` and
beyond each user's ``MAX_STORED_SESSIONS_PER_USER``, like Django's ``clearsessions``. Safe
from cron beside running workers and beside another run (see ``sessions/retention.py``).
"""

from django.core.management.base import BaseCommand, CommandError

from gateway_app.conf import setting
from gateway_app.sessions import retention


class Command(BaseCommand):
    help = (
        "Delete closed sessions (with their transcripts) idle longer than "
        "SESSION_RETENTION_DAYS, and each user's closed sessions beyond their newest "
        "MAX_STORED_SESSIONS_PER_USER. Sessions not closed are never deleted. "
        "Prints one summary line."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--days",
            type=float,
            default=None,
            help="retention in days for this run instead of SESSION_RETENTION_DAYS (0: none)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be deleted; delete nothing"
        )

    def handle(self, *args, days, dry_run, **options):
        if days is None:
            days = setting("SESSION_RETENTION_DAYS")
        elif days < 0:
            raise CommandError("--days must be 0 or more")
        keep = setting("MAX_STORED_SESSIONS_PER_USER")
        if not days and not keep:
            self.stdout.write(
                "gateway_cleanup: nothing to do (SESSION_RETENTION_DAYS and "
                "MAX_STORED_SESSIONS_PER_USER are 0)"
            )
            return
        report = retention.cleanup(days, keep, dry_run=dry_run)
        verb = "would delete" if dry_run else "deleted"
        by_age = (
            f"{report.expired.sessions} session(s) ({report.expired.messages} message(s)) "
            f"idle over {days:g} days"
            if days
            else "nothing by age"
        )
        by_quota = (
            f"{report.over_quota.sessions} session(s) ({report.over_quota.messages} message(s)) "
            f"over the per-user quota of {keep} ({report.users} user(s))"
            if keep
            else "nothing by quota"
        )
        self.stdout.write(f"gateway_cleanup: {verb} {by_age} and {by_quota}")
