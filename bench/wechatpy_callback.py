"""The Python peer of the callback's CPU work: wechatpy verifying the URL signature and the
msg_signature, decrypting and parsing the same 2 KB safe-mode message the criterion bench
uses (read from target/bench-callback-input.json, which that bench writes). Best of 5
`timeit` repeats; prints microseconds per message.

  python bench/wechatpy_callback.py target/bench-callback-input.json
"""
import json
import sys
import timeit

from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import check_signature

i = json.load(open(sys.argv[1]))
crypto = WeChatCrypto(i["token"], i["encoding_aes_key"], i["appid"])


def once():
    check_signature(i["token"], i["signature"], i["timestamp"], i["nonce"])
    xml = crypto.decrypt_message(i["body"], i["msg_signature"], i["timestamp"], i["nonce"])
    return parse_message(xml)


msg = once()
assert msg.type == "text" and len(msg.content) > 1000, msg
n = 2000
best = min(timeit.repeat(once, number=n, repeat=5)) / n
print(f"{best * 1e6:.1f}")
