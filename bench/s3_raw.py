"""The object store's own throughput for the bytes of a block store's packs, with boto3.

usage: s3_raw.py ENDPOINT BUCKET PREFIX GET_THREADS PUT_THREADS
Reads every object under PREFIX/packs/ whole (GET_THREADS at a time), then writes the
same bytes under PREFIX-raw/ (PUT_THREADS at a time), and prints one line:
"BYTES GET_SECONDS PUT_SECONDS". The keys come from AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY. Payloads are signed (SHA-256) as the block store signs its PUTs.
"""
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

endpoint, bucket, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
get_threads, put_threads = int(sys.argv[4]), int(sys.argv[5])
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    region_name="us-east-1",
    config=Config(
        max_pool_connections=max(get_threads, put_threads) * 2,
        s3={"addressing_style": "path", "payload_signing_enabled": True},
        retries={"max_attempts": 1},
    ),
)
keys = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/packs/"):
    keys.extend(o["Key"] for o in page.get("Contents", []))

def get(key):
    return key, s3.get_object(Bucket=bucket, Key=key)["Body"].read()

start = time.monotonic()
with ThreadPoolExecutor(get_threads) as pool:
    bodies = list(pool.map(get, keys))
get_secs = time.monotonic() - start
total = sum(len(b) for _, b in bodies)

def put(item):
    key, body = item
    s3.put_object(Bucket=bucket, Key=f"{prefix}-raw/{key}", Body=body)

start = time.monotonic()
with ThreadPoolExecutor(put_threads) as pool:
    list(pool.map(put, bodies))
put_secs = time.monotonic() - start
print(f"{total} {get_secs:.3f} {put_secs:.3f}")
