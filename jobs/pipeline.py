"""Ray job entry point: `genaudio pipeline` with the same options.

    ray job submit --address http://127.0.0.1:8265 --runtime-env jobs/runtime_env.yaml \
        --working-dir . -- python jobs/pipeline.py --help

See docs/cluster.md. Paths given to a job are paths on the cluster: give --out as an absolute
path on storage every node sees.
"""
from _common import run

if __name__ == "__main__":
    run("pipeline")
