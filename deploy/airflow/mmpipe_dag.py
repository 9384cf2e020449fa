"""Example Airflow 2.x DAG: the mmpipe pipeline as Kubernetes pods.

    ingest -> crawl shards (mapped) -> merge -> encode shards (mapped) -> merge -> train -> verify

Every task is a KubernetesPodOperator running the image built from the repository's Dockerfile (its ENTRYPOINT
is /usr/local/bin/mmpipe, so `arguments` start with the subcommand). All pods mount one PersistentVolumeClaim at
/data; the shard pods run at the same time, so the claim must be ReadWriteMany (see deploy/README.md for the
filesystem caveats: LMDB needs mmap and, for each environment, a single writing host, which every shard satisfies
because each writes its own part).

Batch-job conventions this DAG relies on (README "Batch-job conventions"):
  * `--log-format json` puts one JSON log object per line on stderr, which the pod log collector can parse.
  * `--result-file /airflow/xcom/return.json` writes the stage's JSON summary where the operator's XCom sidecar
    reads it, so with do_xcom_push=True the summary becomes the task's XCom (rows ingested, images stored,
    vectors encoded, test metrics ...).
  * Exit codes: 0 done or skipped (a re-run with the same inputs and parameters is a no-op that exits 0),
    1 internal error, 2 bad usage or bad input, 3 interrupted (SIGINT/SIGTERM: pod eviction, node drain, spot
    pre-emption), 4 resource exhausted. Retries are configured for exit code 3: the stage committed what was
    finished before exiting, and a re-run resumes (crawl fetches only what has no ledger entry, encode keeps the
    vectors already made, train is always given --resume). Airflow cannot retry on some exit codes only, so
    codes 1, 2 and 4 are retried too; a code-2 failure fails again the same way and should be fixed, not
    retried (read the JSON log's error line).

Parameters (Trigger DAG w/ config): shards (N), input, format, encoder, model, image, pvc. The image defaults to
the Airflow Variable `mmpipe_image` (then "mmpipe:latest"); the claim to the Variable `mmpipe_pvc` (then
"mmpipe-data").

This file is an example: it is parsed by deploy/deploy_test.go (with Python's ast module) but never executed in
the project's tests.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow import DAG
from airflow.decorators import task
from airflow.models.param import Param
from airflow.operators.python import get_current_context
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import models as k8s

# Paths inside the pods (all on the shared claim).
DATA = "/data"
DATASET = "/data/ds"
RUN_DIR = "/data/runs/lightgcn"
RESULT_FILE = "/airflow/xcom/return.json"

# Global flags every stage gets (cobra accepts them after the subcommand).
COMMON = ["--log-format", "json", "--result-file", RESULT_FILE]

# Sized for the 2-core, 23 GiB reference machine of BENCHMARKS.md, where every stage was measured:
# ingest of 10 M interactions peaks at 1.0 GB RSS, a crawl shard at ~0.25 GB (LMDB map pages aside), LightGCN
# on Amazon Baby at 0.27 GB. The requests leave room for larger datasets (ingest needs ~1 GB per 10 M rows);
# raise ingest's memory limit past ~50 M interactions (see deploy/README.md).
SMALL = k8s.V1ResourceRequirements(
    requests={"cpu": "500m", "memory": "512Mi"},
    limits={"cpu": "1", "memory": "1Gi"},
)
TWO_CORES = k8s.V1ResourceRequirements(
    requests={"cpu": "2", "memory": "4Gi"},
    limits={"cpu": "2", "memory": "8Gi"},
)

# The shared claim, mounted at /data in every pod. Its name is templated (volumes is a templated field of the
# operator in current cncf-kubernetes providers; with an older provider, write the claim name here).
VOLUMES = [
    k8s.V1Volume(
        name="data",
        persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
            claim_name="{{ params.pvc or var.value.get('mmpipe_pvc', 'mmpipe-data') }}"
        ),
    )
]
VOLUME_MOUNTS = [k8s.V1VolumeMount(name="data", mount_path=DATA)]

# The Dockerfile's runtime image runs as uid/gid 10001; fs_group makes the claim writable for it.
SECURITY_CONTEXT = k8s.V1PodSecurityContext(run_as_non_root=True, run_as_user=10001, run_as_group=10001, fs_group=10001)

# Settings shared by every pod. Retries with exponential back-off: an interrupted stage (exit 3) resumes where it
# stopped, and the back-off (1, 2, 4, ... minutes, at most 30) gives an evicted pod's node time to come back or
# the cluster autoscaler time to add one.
POD_DEFAULTS = dict(
    image="{{ params.image or var.value.get('mmpipe_image', 'mmpipe:latest') }}",
    image_pull_policy="IfNotPresent",
    volumes=VOLUMES,
    volume_mounts=VOLUME_MOUNTS,
    security_context=SECURITY_CONTEXT,
    do_xcom_push=True,  # the sidecar reads /airflow/xcom/return.json (written by --result-file)
    get_logs=True,
    on_finish_action="delete_pod",  # cncf-kubernetes provider >= 7.5; older ones: is_delete_operator_pod=True
    retries=4,
    retry_delay=timedelta(minutes=1),
    retry_exponential_backoff=True,
    max_retry_delay=timedelta(minutes=30),
)

with DAG(
    dag_id="mmpipe",
    description="mmpipe: ingest, sharded crawl and encode, merge, train, verify",
    start_date=datetime(2026, 1, 1),
    schedule=None,  # triggered by hand or by an upstream DAG
    catchup=False,
    max_active_runs=1,  # two runs would share /data/ds
    tags=["mmpipe", "example"],
    params={
        "shards": Param(4, type="integer", minimum=1, maximum=256, description="N: crawl and encode shards"),
        "input": Param("/data/raw", type="string", description="raw source file or folder on the claim"),
        "format": Param("amazon2018", type="string", description="mmpipe ingest --format"),
        "encoder": Param("image-stats", type="string", description="mmpipe encode --encoder"),
        "model": Param("lightgcn", type="string", description="mmpipe train --model"),
        "image": Param("", type="string", description="container image; empty: Variable mmpipe_image"),
        "pvc": Param("", type="string", description="claim name; empty: Variable mmpipe_pvc"),
    },
) as dag:

    # 1. Ingest (one pod; ~1.3 M rows/s on 2 cores, so even 100 M interactions take minutes).
    # Idempotent: same inputs (path, size, mtime) and parameters -> skipped, exit 0.
    ingest = KubernetesPodOperator(
        task_id="ingest",
        name="mmpipe-ingest",
        arguments=["ingest", "--format", "{{ params.format }}", "--input", "{{ params.input }}", "--out", DATASET]
        + COMMON,
        container_resources=TWO_CORES,
        **POD_DEFAULTS,
    )

    # The shard lists are built at run time because N is a DAG param (a value known only when the run starts).
    # They are concrete lists (no Jinja): values that reach a mapped task through XCom are not templated.
    @task
    def crawl_shard_args() -> list[list[str]]:
        n = int(get_current_context()["params"]["shards"])
        return [["crawl", "--dataset", DATASET, "--shard", f"{i}/{n}", "--progress", "log"] + COMMON for i in range(n)]

    @task
    def encode_shard_args() -> list[list[str]]:
        params = get_current_context()["params"]
        n = int(params["shards"])
        encoder = str(params["encoder"])
        return [
            ["encode", "--dataset", DATASET, "--shard", f"{i}/{n}", "--encoder", encoder] + COMMON for i in range(n)
        ]

    # 2. Crawl, one mapped pod per shard i/N: the items whose FNV-1a hash of the raw id is i mod N, into
    # /data/ds/parts/crawl-i-of-N/. Network-bound in practice; a SIGTERM commits the open batch and exits 3,
    # and the retry fetches only what has no ledger entry yet.
    crawl = KubernetesPodOperator.partial(
        task_id="crawl",
        name="mmpipe-crawl",
        container_resources=TWO_CORES,
        max_active_tis_per_dag=16,  # how many shard pods run at once (politeness is per pod: see README)
        **POD_DEFAULTS,
    ).expand(arguments=crawl_shard_args())

    # 3. Merge the crawl parts into /data/ds/images.lmdb (refuses a missing shard or a different N: exit 2).
    merge_crawl = KubernetesPodOperator(
        task_id="merge_crawl",
        name="mmpipe-merge-crawl",
        arguments=["merge", "--dataset", DATASET] + COMMON,
        container_resources=TWO_CORES,
        **POD_DEFAULTS,
    )

    # 4. Encode, one mapped pod per shard (item_idx % N == i) into /data/ds/features/parts/. A retry keeps the
    # vectors already made. For an ONNX encoder add "--model-dir", "/data/models/<name>" (and "--device", "cuda"
    # with a GPU image and a nvidia.com/gpu limit).
    encode = KubernetesPodOperator.partial(
        task_id="encode",
        name="mmpipe-encode",
        container_resources=TWO_CORES,
        max_active_tis_per_dag=16,
        **POD_DEFAULTS,
    ).expand(arguments=encode_shard_args())

    # 5. Merge the encode parts into /data/ds/features/<modality>.<encoder>.arrow.
    merge_encode = KubernetesPodOperator(
        task_id="merge_encode",
        name="mmpipe-merge-encode",
        arguments=["merge", "--dataset", DATASET] + COMMON,
        container_resources=SMALL,
        **POD_DEFAULTS,
    )

    # 6. Train. Always --resume: the first attempt starts from the beginning ("no checkpoint to resume from"),
    # a retry after exit 3 continues from the last checkpoint with the same result as an uninterrupted run, and
    # a complete run is skipped (exit 0). The result file carries report.json's metrics.
    train = KubernetesPodOperator(
        task_id="train",
        name="mmpipe-train",
        arguments=[
            "train",
            "--model",
            "{{ params.model }}",
            "--dataset",
            DATASET,
            "--out",
            RUN_DIR,
            "--resume",
        ]
        + COMMON,
        container_resources=TWO_CORES,
        **POD_DEFAULTS,
    )

    # 7. Verify every file of the dataset against its manifest (exit 2 names each problem).
    verify = KubernetesPodOperator(
        task_id="verify",
        name="mmpipe-verify",
        arguments=["verify", "--json", DATASET] + COMMON,
        container_resources=SMALL,
        # A problem verify finds is in the data (exit 2), not transient: do not retry it.
        **dict(POD_DEFAULTS, retries=0),
    )

    ingest >> crawl >> merge_crawl >> encode >> merge_encode >> train >> verify
