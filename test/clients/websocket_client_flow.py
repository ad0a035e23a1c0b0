#!/usr/bin/env python3
"""Checks the basic databridge flow with a client no one on the team wrote (websocket-client).

    websocket_client_flow.py URL KEY ENTITLED_SYMBOL REFUSED_SYMBOL

Connects with the key, expects welcome, subscribes to both symbols, expects the
entitled one accepted and the other refused with symbol_not_entitled and a
tier, then at least three market_data frames that carry only the entitled
symbol with increasing frame seqs. Exits 0 on success, 1 with a reason.
"""
import json
import sys

import websocket


def fail(why):
    print("FAIL: " + why)
    sys.exit(1)


def main():
    url, key, entitled, refused = sys.argv[1:5]
    ws = websocket.create_connection(url, header=["Authorization: Bearer " + key], timeout=10)
    welcome = json.loads(ws.recv())
    if welcome.get("type") != "welcome" or welcome.get("protocol") != "databridge.v1":
        fail("first message is not a databridge.v1 welcome: %r" % welcome)
    ws.send(json.dumps({"type": "subscribe", "id": "py-1", "symbols": [entitled, refused]}))
    frames = []
    subscribed = None
    while len(frames) < 3:
        msg = json.loads(ws.recv())
        kind = msg.get("type")
        if kind == "subscribed":
            subscribed = msg
            if msg.get("id") != "py-1" or msg.get("accepted") != [entitled]:
                fail("subscribe reply does not accept exactly %s: %r" % (entitled, msg))
            refusals = msg.get("refused") or []
            if len(refusals) != 1 or refusals[0].get("symbol") != refused \
                    or refusals[0].get("code") != "symbol_not_entitled" or not refusals[0].get("tier"):
                fail("%s was not refused with symbol_not_entitled naming a tier: %r" % (refused, refusals))
        elif kind == "market_data":
            if subscribed is None:
                fail("market_data arrived before the subscribe reply")
            for tick in msg["ticks"]:
                if tick["symbol"] != entitled:
                    fail("received %s, which was not accepted" % tick["symbol"])
                if not tick["ask"] >= tick["bid"] > 0:
                    fail("impossible quote delivered: %r" % tick)
            frames.append(msg["seq"])
        elif kind == "error":
            fail("error: %r" % msg)
    if frames != list(range(frames[0], frames[0] + len(frames))):
        fail("frame seqs are not consecutive: %r" % frames)
    ws.close()
    print("ok: welcome, subscribe (1 accepted, 1 refused naming tier %s), frames %r"
          % (subscribed["refused"][0]["tier"], frames))


if __name__ == "__main__":
    main()
