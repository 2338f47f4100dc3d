"""moto's SQS server with deletes that cannot lose a message, and FIFO
groups that come back in order.

Run with the virtualenv's Python, in place of `.venv/bin/moto_server`; the
arguments are moto's own (`-H 127.0.0.1 -p PORT`).

moto 5.2's `Queue.delete_message` rebuilds the queue's message list outside
the queue's lock. Two deletes at once (two triggers settling their batches)
while a third request sends can therefore drop the message just sent, or
bring back one just deleted: with two consumers on one queue, a burst test
lost 2 replies of 1,000. Every SQS stand-in in this repository starts
through here, so each delete holds the lock the queue already takes for
sends; real SQS has no such race.

moto 5.2's `receive_message` also frees a FIFO group only message by
message while it walks the queue: when two messages of one group turn
visible again together, the first is skipped as "its group is still in
flight" (the second still is) and the second is handed out alone, ahead
of it. SQS hands a group's messages out in order, so here a group counts
as in flight only while one of its messages is still invisible.

With IAM enforced, moto 5.2 asks for `sqs:SendMessageBatch` and
`sqs:DeleteMessageBatch`, actions IAM does not have: SQS authorises batch
calls as `sqs:SendMessage` and `sqs:DeleteMessage`, and so does the
launcher, so a policy that works on AWS works here.
"""

import sys

from moto.server import main
from moto.iam.access_control import IAMRequestBase
from moto.sqs.models import Queue

_unlocked_delete = Queue.delete_message


def _locked_delete(self: Queue, receipt_handle: str) -> None:
    with self._messages_lock:
        _unlocked_delete(self, receipt_handle)


Queue.delete_message = _locked_delete

_groups_with_pending = Queue.pending_message_groups.fget


def _groups_in_flight(self: Queue) -> set:
    # A pending message visible again was given up on by its consumer.
    for message in [m for m in self.pending_messages if m.visible]:
        self.pending_messages.discard(message)
    return _groups_with_pending(self)


Queue.pending_message_groups = property(_groups_in_flight)

# SQS's batch calls and the single action each is authorised as.
_AUTHORISED_AS = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}
_check_action = IAMRequestBase.check_action_permitted


def _check_as_sqs_does(self: IAMRequestBase, resource: str) -> None:
    self._action = _AUTHORISED_AS.get(self._action, self._action)
    _check_action(self, resource)


IAMRequestBase.check_action_permitted = _check_as_sqs_does

if __name__ == "__main__":
    sys.exit(main())
