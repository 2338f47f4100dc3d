"""moto's SQS server with deletes that cannot lose a message.

Run with the virtualenv's Python, in place of `.venv/bin/moto_server`; the
arguments are moto's own (`-H 127.0.0.1 -p PORT`).

moto 5.2's `Queue.delete_message` rebuilds the queue's message list outside
the queue's lock. Two deletes at once (two triggers settling their batches)
while a third request sends can therefore drop the message just sent, or
bring back one just deleted: with two consumers on one queue, a burst test
lost 2 replies of 1,000. Every SQS stand-in in this repository starts
through here, so each delete holds the lock the queue already takes for
sends; real SQS has no such race.
"""

import sys

from moto.server import main
from moto.sqs.models import Queue

_unlocked_delete = Queue.delete_message


def _locked_delete(self: Queue, receipt_handle: str) -> None:
    with self._messages_lock:
        _unlocked_delete(self, receipt_handle)


Queue.delete_message = _locked_delete

if __name__ == "__main__":
    sys.exit(main())
