"""Signed, expiring links to a job's live log page (`GET /jobs/{id}?link=…`).

A link is made for one Playbot user and one job: `itsdangerous`' URL-safe timed signature
(HMAC-SHA1 over a key derived from the secret and a salt of its own) of `(job uuid, user id)`.
Guarantees:
- a link names its job: it never opens another job's page or log;
- it expires `ttl` after it was made (checked on every request the page makes, so an open
  page stops following the log once its link has expired);
- it carries no secret and no permission of its own: every request made with it acts as its
  user, whose role and active state are checked again (a deactivated user's links stop);
- the key is derived from SLACK_SIGNING_SECRET with a salt used for nothing else: changing
  the signing secret invalidates every link.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from core.errors import PlaybotError

SALT = "playbot.live-log-link.v1"


class BadLink(PlaybotError):
    """A live log link that is malformed, forged, for another job, or expired."""


@dataclass(frozen=True)
class LogLinks:
    """Makes and checks live log links. `public_url`: where `playbot web` is reached (None:
    no links can be handed out)."""

    secret: str
    public_url: str | None = None
    ttl: timedelta = timedelta(hours=1)

    def _serializer(self) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.secret, salt=SALT)

    def sign(self, job_uuid: str, user_id: int) -> str:
        """The link token for `user_id` to follow job `job_uuid`."""
        return str(self._serializer().dumps([job_uuid, int(user_id)]))

    def url(self, job_uuid: str, user_id: int) -> str | None:
        """The page's full URL with a fresh link token, or None without a public URL."""
        if not self.public_url:
            return None
        return (f"{self.public_url}/jobs/{quote(job_uuid)}"
                f"?link={quote(self.sign(job_uuid, user_id))}")

    def verify(self, link: str, job_uuid: str) -> int:
        """The user id a link was made for, if it is genuine, unexpired and for this job.

        Raises BadLink saying what is wrong (expired, or not valid for this job).
        """
        try:
            payload = self._serializer().loads(
                link, max_age=max(int(self.ttl.total_seconds()), 1))
        except SignatureExpired:
            raise BadLink("This live log link has expired. Click Live log on the job's Slack "
                          "message for a new one.") from None
        except BadSignature:
            raise BadLink("This live log link is not valid.") from None
        if (not isinstance(payload, list) or len(payload) != 2
                or payload[0] != job_uuid or not isinstance(payload[1], int)):
            raise BadLink("This live log link is not valid for this job.")
        return int(payload[1])
