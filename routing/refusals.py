"""What a send refused with queue_full leaves behind: a dead letter within bounds, or nothing.

A refused send was never accepted: its sender got `queue_full` and still holds the message.
So the dead letter it leaves is a courtesy for the project's admins (seen, replayable), and
it must not be a way to fill the database: it is kept only for a payload up to
BROKER_REFUSED_PAYLOAD_BYTES, and only while the project has fewer than
BROKER_MAX_REFUSED_DEAD_LETTERS of them. Past either bound, nothing is stored and the sender
is told so.
"""


from django.conf import settings

from broker_site.jsoncodec import json_size
from projects.models import Project
from routing.models import Message


class RefusedLetters:
    """The keep-or-drop decision for one round of sends; counts each project's refused dead letters once."""

    def __init__(self) -> None:
        self.kept: dict[str, int] = {}

    def keep(self, project: Project, payload: dict) -> bool:
        """Whether a refused message with this payload may stay as a dead letter (and count it if so).

        Race: two rounds refusing at once may both see room for the last one; the cap is then
        passed by a round's worth, never without bound.
        """
        size = json_size(payload)
        if size > settings.BROKER["REFUSED_PAYLOAD_BYTES"]:
            return False
        if project.pk not in self.kept:
            self.kept[project.pk] = Message.objects.filter(project=project, state=Message.State.DEAD,
                                                           dead_reason=Message.DeadReason.QUEUE_FULL).count()
        if self.kept[project.pk] >= settings.BROKER["MAX_REFUSED_DEAD_LETTERS"]:
            return False
        self.kept[project.pk] += 1
        return True
