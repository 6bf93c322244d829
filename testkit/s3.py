"""A real S3-protocol server for tests and benchmarks: moto's standalone server on a loopback port.

The client code under test (obstore, the Rust `object_store` crate) speaks HTTP and SigV4 to it as
it would to AWS or MinIO, so no Python object is replaced. Authentication is enforced: moto accepts
any credentials unless told otherwise, so the server is set up with one IAM user allowed `s3:*`,
its access key is what `S3Server.env` holds, and then every request must be signed by a known key
(moto's `/moto-api/reset-auth`, the server-side form of `INITIAL_NO_AUTH_ACTION_COUNT`). A wrong key
or secret is then refused as AWS would refuse it.

moto keeps its state and that auth switch per process: one server per test process (pytest-xdist
runs one per worker), and no `mock_aws` in the same process while it runs.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

REGION = "us-east-1"
_ALLOW_S3 = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})


@dataclass(frozen=True)
class S3Server:
    """A running server: its endpoint, a bucket on it, and the AWS_* variables of a user allowed to use it."""

    endpoint: str
    bucket: str
    access_key_id: str
    secret_access_key: str

    @property
    def env(self) -> dict[str, str]:
        """The standard AWS variables that point a client at this server (set them before building one)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_REGION": REGION,
        }

    def url(self, prefix: str = "") -> str:
        """The FORGEFLOW_STORAGE_URL of `prefix` in the bucket."""
        return f"s3://{self.bucket}/{prefix}".rstrip("/")

    def client(self, service: str = "s3") -> Any:
        """A boto3 client for this server (set-up and inspection in tests; never the code under test)."""
        import boto3  # type: ignore[import-untyped]  # boto3 ships no types; it only sets up tests here

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )


@contextmanager
def s3_server(bucket: str = "forgeflow-test") -> Iterator[S3Server]:
    """Start moto's server on 127.0.0.1 (a free port), create `bucket` and a user allowed to use it,
    enforce authentication, yield it, and stop it."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        setup = S3Server(endpoint, bucket, "setup", "setup")  # any key works until auth is enforced
        iam = setup.client("iam")
        iam.create_user(UserName="forgeflow")
        iam.put_user_policy(UserName="forgeflow", PolicyName="s3", PolicyDocument=_ALLOW_S3)
        key = iam.create_access_key(UserName="forgeflow")["AccessKey"]
        setup.client().create_bucket(Bucket=bucket)
        _reset_auth(endpoint, "0")  # from now on every request is authenticated
        yield S3Server(endpoint, bucket, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        _reset_auth(endpoint, "inf")
        server.stop()


def _reset_auth(endpoint: str, unauthenticated_requests: str) -> None:
    """How many more requests moto serves without checking their signature (`inf`: all)."""
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=unauthenticated_requests.encode(),
        headers={"content-type": "text/plain"},  # a form body would be parsed away before moto reads it
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
