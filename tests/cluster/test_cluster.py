"""baro on a three-server JetStream cluster, runners on disks of their own.

Every stream, bucket and object store is replicated on all three servers; a run submitted
as an uploaded bundle is planned, worked by fenced runners and delivered through the
object store alone; an agent that goes looking for the user's repository or the merger's
disk finds nothing there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from baro_shared.bus import Bus
from tests.cluster.conftest import REPLICAS, ClusterWorld, fetched_branch, submit_bundle
from tests.conftest import make_repo, run_git, snapshot
from tests.faults.conftest import events_of, wait_final, wait_story

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]

SECRET = "the user's uncommitted secret"


async def test_everything_is_replicated_on_three_servers(
    cluster: ClusterWorld, client: Bus
) -> None:
    names = [cfg.name for cfg in client.topology.streams]
    names += [f"KV_{kv.bucket}" for kv in client.topology.kv]
    names += [f"OBJ_{obj.bucket}" for obj in client.topology.objects]
    for name in names:
        info = await client.js.stream_info(name)
        assert info.config.num_replicas == REPLICAS, name
        assert info.cluster is not None and info.cluster.leader, name
        peers = {info.cluster.leader, *(r.name for r in info.cluster.replicas or [])}
        assert peers == {"n0", "n1", "n2"}, name
    # every member serves clients: the services may be connected to any of them
    assert len(cluster.nats.url.split(",")) == 3


async def test_fenced_runners_deliver_through_the_object_store_alone(
    cluster: ClusterWorld, client: Bus
) -> None:
    if not cluster.fenced:
        pytest.skip(
            "this kernel refuses the fence's mount namespace (not root, no user namespaces)"
        )
    cluster.start_core()
    runners = [cluster.start("agent-runner"), cluster.start("agent-runner")]
    repo = make_repo(cluster.root / "user", {"app.py": "VALUE = 0\n", "README.md": "# app\n"})
    (repo / "notes.txt").write_text(SECRET + "\n")  # untracked: never part of the upload
    before = snapshot(repo)
    merger_disk = cluster.disk("merger", 0)
    # the agent looks for the user's repository, the merger's disk and the whole world
    look = (
        f"{{ cat {repo}/notes.txt; ls {merger_disk}; ls {cluster.root}; ls {cluster.root}/disks;"
        f" echo VALUE = 1; }} > app.py 2>&1; true"
    )
    script = {"default": {"steps": [{"run": look}, {"sleep": 1.0}]}}
    run_id = await submit_bundle(client, repo, "set VALUE to 1 in app.py", script)

    rec = await wait_story(client, cluster, run_id, "S1", "running", timeout=60)
    runner = next(p for p in runners if p.runner_id == rec.story("S1").runner)
    own = cluster.disk("agent-runner", runners.index(runner))
    assert cluster.sees(runner, own / "cache")
    for elsewhere in (repo, merger_disk, cluster.root / "nats", cluster.disk("conductor", 0)):
        assert elsewhere.exists() and not cluster.sees(runner, elsewhere), elsewhere
    assert Path(f"/proc/{runner.pid}/cwd").resolve() == own

    final = await wait_final(client, cluster, run_id, timeout=120)
    assert final.state == "delivered", final.reason
    assert final.delivered is not None and final.delivered.published == "object_store"
    branch = await fetched_branch(client, cluster, run_id, repo)
    seen = run_git(repo, "show", f"{branch}:app.py")
    assert SECRET not in seen
    assert "No such file or directory" in seen
    # from inside, the world holds nothing but the path down to the runner's own disk
    listing = seen.split("\n")
    assert "user" not in listing and "nats" not in listing and "merger-0" not in listing
    kinds = [type(e).__name__ for e in await events_of(client, run_id)]
    assert kinds.count("StoryIntegrated") == 1
    # the user's checkout is untouched apart from the fetched branch's refs
    after = snapshot(repo)
    assert (after.head, after.status, after.files) == (before.head, before.status, before.files)
