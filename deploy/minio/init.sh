#!/bin/sh
# One-shot set-up of MinIO for docker-compose.yml (the minio-init service, image minio/mc): waits for
# the server, creates the bucket, and a user for the workers whose policy (policy.json) reaches that
# bucket only, so no worker holds MinIO's root credentials. It runs at every `docker compose up`, so each
# step leaves what already exists as it is (the user's password is set to WORKER_PASSWORD again).
set -eu

tries=0
until mc alias set store "$MINIO_URL" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null 2>&1 \
  && mc ls store >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 60 ]; then
    echo "minio-init: MinIO at $MINIO_URL did not answer after 60 tries" >&2
    exit 1
  fi
  sleep 1
done

mc mb --ignore-existing "store/$BUCKET"
mc admin policy create store forgeflow-readwrite /deploy/minio/policy.json
mc admin user add store "$WORKER_USER" "$WORKER_PASSWORD"
# Attaching a policy the user already has is an error to mc; any other error is one to us. (Shell
# only, no grep: the mc image is minimal.)
if ! out=$(mc admin policy attach store forgeflow-readwrite --user "$WORKER_USER" 2>&1); then
  case "$out" in
    *already*) ;;
    *) echo "$out" >&2; exit 1 ;;
  esac
fi
echo "minio-init: bucket $BUCKET and user $WORKER_USER ready"
