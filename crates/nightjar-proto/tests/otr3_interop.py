#!/usr/bin/env python3
"""Runs python-potr's SMP (potr.crypt.SMPHandler) for otr3_interop.rs.

Usage: otr3_interop.py OUR_FINGERPRINT THEIR_FINGERPRINT SESSION_ID (hex, as
potr sees them: "our" is potr's own side).

Reads one command a line, all arguments hex:
    start SECRET [QUESTION]   begin a run (SMP1, or SMP1Q with a question)
    answer SECRET             answer the peer's SMP1/SMP1Q (SMP2)
    recv TLV                  hand potr one TLV from the peer
and answers each with zero or more lines
    send TLV                  a TLV potr sends to the peer
    asked QUESTION            only after recv of SMP1/SMP1Q: the question ("-" if none)
followed by
    end PROGRESS              potr's SMP progress: 0 ongoing, 1 succeeded,
                              -1 failed, -2 cheated or aborted
"""

import sys

from potr import proto
from potr.crypt import SMPHandler


class Key:
    """The one thing SMPHandler asks of a key: its fingerprint."""

    def __init__(self, fingerprint):
        self._fingerprint = fingerprint

    def fingerprint(self):
        return self._fingerprint


class Account:
    def __init__(self, key):
        self._key = key

    def getPrivkey(self):
        return self._key


class Conversation:
    """Collects what SMPHandler sends instead of encrypting it."""

    def __init__(self, ours):
        self.user = Account(Key(ours))
        self.outbox = []

    def sendInternal(self, msg, tlvs=(), appdata=None):
        self.outbox.extend(tlvs)

    def setCurrentTrust(self, trust):
        pass


class Session:
    """What SMPHandler reads from potr's crypto context."""

    def __init__(self, ours, theirs, session_id):
        self.ctx = Conversation(ours)
        self.theirPubkey = Key(theirs)
        self.sessionId = session_id


def main():
    ours, theirs, session_id = (bytes.fromhex(a) for a in sys.argv[1:4])
    session = Session(ours, theirs, session_id)
    smp = SMPHandler(session)
    for line in sys.stdin:
        words = line.split()
        command, args = words[0], [bytes.fromhex(w) for w in words[1:]]
        if command == "start":
            smp.gotSecret(args[0], question=args[1] if len(args) > 1 else None)
        elif command == "answer":
            smp.gotSecret(args[0])
        elif command == "recv":
            (tlv,) = proto.TLV.parse(args[0])
            smp.handle(tlv)
            if isinstance(tlv, (proto.SMP1TLV, proto.SMP1QTLV)) and smp.state == 0:
                question = getattr(tlv, "msg", None)
                print("asked", "-" if question is None else question.hex())
        else:
            sys.exit("unknown command " + command)
        for tlv in session.ctx.outbox:
            print("send", bytes(tlv).hex())
        session.ctx.outbox.clear()
        print("end", smp.prog, flush=True)


if __name__ == "__main__":
    main()
