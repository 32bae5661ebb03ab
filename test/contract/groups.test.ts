// Erlang/OTP pg conformance, modelled on pg_SUITE's single-node cases: against the engine and
// against a network client of a real server.
import assert from 'node:assert/strict'
import { it } from 'node:test'
import { Forbidden, InvalidArgument, NotJoined } from '../../src/index.js'
import type { GroupEvent, Message } from '../../src/index.js'
import { contract, drained, next } from './harness.js'

const sorted = (pids: readonly string[]): string[] => [...pids].sort()
const strip = (events: GroupEvent[]) =>
  events.map((e) => ('revision' in e ? { ...e, revision: 0 } : e))

contract('process groups (pg)', (c) => {
  it('single: join, multiplicity, leave, which_groups, empty groups vanish', async () => {
    const ds = await c.open()
    const pg = ds.groups()
    const p = ds.process('p')
    assert.equal(await pg.join('g', p), 'ok')
    assert.deepEqual(await pg.members('g'), [p.id])
    await pg.join('g', [p, p])
    assert.deepEqual(await pg.members('g'), [p.id, p.id, p.id])
    assert.deepEqual(await pg.whichGroups(), ['g'])
    // Remotely "local" means the server's node, which is where a client's processes live.
    assert.deepEqual(await pg.whichLocalGroups(), ['g'])
    assert.deepEqual(await pg.localMembers('g'), [p.id, p.id, p.id])
    assert.equal(await pg.leave('g', p), 'ok')
    assert.equal(await pg.leave('g', [p, p]), 'ok')
    assert.deepEqual(await pg.members('g'), [])
    assert.deepEqual(await pg.whichGroups(), [], 'an empty group does not exist')
    assert.equal(await pg.leave('g', p), 'not_joined')
  })

  it('leave of a list: members removed, non-members skipped; not_joined only if none were', async () => {
    const ds = await c.open()
    const pg = ds.groups()
    const [a, b, p] = [ds.process('a'), ds.process('b'), ds.process('c')]
    await pg.join('g', [a, b])
    assert.equal(await pg.leave('g', [a, p]), 'ok')
    assert.deepEqual(await pg.members('g'), [b.id])
    assert.equal(await pg.leave('g', [a, p]), 'not_joined')
  })

  it('process_owner_check: only live processes of this dataspace join; nothing of a bad list applies', async () => {
    const ds = await c.open()
    const pg = ds.groups()
    const alive = ds.process('alive')
    const dead = ds.process('dead')
    await dead.exit()
    await assert.rejects(pg.join('g', dead), InvalidArgument)
    // Over the network a pid that is not one of the session's is Forbidden before it is looked up.
    const unknown = c.target === 'local' ? InvalidArgument : Forbidden
    await assert.rejects(pg.join('g', `${ds.node}/nobody#42`), unknown)
    await assert.rejects(pg.join('g', [alive, dead]), InvalidArgument)
    await assert.rejects(pg.join('g', []), InvalidArgument)
    await assert.rejects(pg.join('', alive), InvalidArgument)
    assert.deepEqual(await pg.members('g'), [])
    const other = await c.open()
    // Remotely a pid of another server may look like one of the session's (pids restart at #1
    // on every server): then the engine refuses it, as in memory.
    await assert.rejects(
      other.groups().join('g', alive),
      (e) => e instanceof InvalidArgument || e instanceof unknown,
    )
    assert.deepEqual(await other.groups().members('g'), [])
  })

  it("another client's processes: any live pid joins in process; over the network, Forbidden", async () => {
    const ds = await c.open()
    const other = await c.peer(ds)
    const theirs = other.process('theirs')
    await other.groups().join('g', theirs, { by: 'them' })
    const pg = ds.groups()
    if (c.target === 'local') {
      // One trust domain: pg lets any process join or leave any live pid, as Erlang's does.
      assert.equal(await pg.join('g', theirs), 'ok')
      await pg.updateMeta('g', theirs, { by: 'us' })
      assert.equal(await pg.leave('g', [theirs, theirs]), 'ok')
    } else {
      // docs/protocol.md: every pid must be the session's process or one of its children.
      await assert.rejects(pg.join('g', theirs), Forbidden)
      await assert.rejects(pg.join('g', [ds.process('mine'), theirs]), Forbidden)
      await assert.rejects(pg.updateMeta('g', theirs, { by: 'us' }), Forbidden)
      await assert.rejects(pg.leave('g', theirs), Forbidden)
      await assert.rejects(pg.join('g', `${ds.node}/nobody#42`), Forbidden)
      assert.deepEqual(await pg.membersWithMeta('g'), [
        { pid: theirs.id, count: 1, meta: { by: 'them' } },
      ])
    }
  })

  it('leave_exit_race: members leave with their process, in the exit commit', async () => {
    const ds = await c.open()
    const pg = ds.groups()
    const p = ds.process('p')
    await pg.join('g1', [p, p, p])
    await pg.join('g2', p)
    await p.assert('k', 'x', {})
    const monitor = pg.monitor()
    const records = ds.watch('k')
    assert.equal((await next(monitor)).type, 'snapshot')
    assert.equal((await next(records)).type, 'snapshot')
    await p.exit()
    const leaves = [await next(monitor), await next(monitor)]
    assert.deepEqual(
      leaves.map((e) => e.type === 'leave' && `${e.group}:${e.pids.length}`).sort(),
      ['g1:3', 'g2:1'],
    )
    const retracted = await next(records)
    assert.equal(retracted.type === 'retracted' && retracted.reason, 'owner-exit')
    const revisions = [...leaves, retracted].map((e) => ('revision' in e ? e.revision : -1))
    assert.deepEqual(new Set(revisions).size, 1, `one exit commit, not ${revisions.join(', ')}`)
    assert.deepEqual(await drained(c, ds, monitor), [])
    assert.deepEqual(await pg.whichGroups(), [])
    assert.equal(await pg.leave('g1', p), 'not_joined')
  })

  it('monitor: snapshot, then join/leave with multiplicity; a batch join is one event', async () => {
    const ds = await c.open()
    const pg = ds.groups()
    const [a, b] = [ds.process('a'), ds.process('b')]
    await pg.join('g', a)
    const monitor = pg.monitor('g')
    assert.deepEqual(strip([await next(monitor)]), [
      { type: 'snapshot', groups: { g: [a.id] }, revision: 0 },
    ])
    await pg.join('g', [a, b, b])
    await pg.join('other', a)
    await pg.leave('g', b)
    await a.exit()
    assert.deepEqual(strip(await drained(c, ds, monitor)), [
      { type: 'join', group: 'g', pids: [a.id, b.id, b.id], revision: 0 },
      { type: 'leave', group: 'g', pids: [b.id], revision: 0 },
      { type: 'leave', group: 'g', pids: [a.id, a.id], revision: 0 },
    ])
  })

  it('monitor_scope: the whole scope as { group: pids }, then events of every group', async () => {
    const ds = await c.open()
    const pg = ds.groups('s')
    const p = ds.process('p')
    await pg.join('g1', [p, p])
    await pg.join('g2', p)
    const monitor = pg.monitor()
    assert.deepEqual(strip([await next(monitor)]), [
      { type: 'snapshot', groups: { g1: [p.id, p.id], g2: [p.id] }, revision: 0 },
    ])
    await pg.join('g3', p)
    await p.exit()
    const events = strip(await drained(c, ds, monitor))
    assert.deepEqual(events[0], { type: 'join', group: 'g3', pids: [p.id], revision: 0 })
    assert.deepEqual(
      events
        .slice(1)
        .map((e) => e.type === 'leave' && `${e.group}:${e.pids.length}`)
        .sort(),
      ['g1:2', 'g2:1', 'g3:1'],
    )
  })

  it('a monitor sees the writes of another client of the same dataspace', async () => {
    const ds = await c.open()
    const watcher = await c.peer(ds)
    const monitor = watcher.groups().monitor('g')
    assert.deepEqual(strip([await next(monitor)]), [{ type: 'snapshot', groups: {}, revision: 0 }])
    const p = ds.process('p')
    await ds.groups().join('g', p, { zone: 'a' })
    await p.exit()
    assert.deepEqual(strip(await drained(c, ds, monitor)), [
      { type: 'join', group: 'g', pids: [p.id], revision: 0 },
      { type: 'leave', group: 'g', pids: [p.id], revision: 0 },
    ])
  })

  it('multi_monitor and demonitor: each monitor gets every event; a closed one gets none', async () => {
    const ds = await c.open()
    const pg = ds.groups()
    const p = ds.process('p')
    const one = pg.monitor('g')
    const two = pg.monitor('g')
    await pg.join('g', p)
    await c.settle(ds) // the join is queued on both; closing drops what `two` has queued
    two.close()
    await pg.leave('g', p)
    assert.deepEqual(
      (await drained(c, ds, one)).map((e) => e.type),
      ['snapshot', 'join', 'leave'],
    )
    assert.deepEqual(await drained(c, ds, two), [])
    assert.equal(await two.closed, 'closed')
  })

  it('monitor_self: a process monitoring a group it joins sees its own join and exit', async () => {
    const ds = await c.open()
    const pg = ds.groups()
    const seen: string[] = []
    const self = ds.spawn('self', async (proc) => {
      const monitor = pg.monitor('g')
      await pg.join('g', proc)
      for await (const event of monitor) {
        seen.push(event.type)
        if (event.type === 'join') break
      }
    })
    await self.exited
    assert.deepEqual(seen, ['snapshot', 'join'])
    assert.deepEqual(await pg.members('g'), [])
  })

  it('scopes are independent', async () => {
    const ds = await c.open()
    const p = ds.process('p')
    await ds.groups('one').join('g', p)
    assert.deepEqual(await ds.groups('two').members('g'), [])
    assert.deepEqual(await ds.groups('one').members('g'), [p.id])
    assert.deepEqual(await ds.groups().whichGroups(), [])
  })

  it('metadata: membersWithMeta, updateMeta emits update, NotJoined for non-members', async () => {
    const ds = await c.open()
    const pg = ds.groups()
    const p = ds.process('p')
    await pg.join('g', p, { zone: 'a' })
    const monitor = pg.monitor('g')
    assert.equal((await next(monitor)).type, 'snapshot')
    await pg.updateMeta('g', p, { zone: 'b' })
    assert.deepEqual(await pg.membersWithMeta('g'), [{ pid: p.id, count: 1, meta: { zone: 'b' } }])
    assert.deepEqual(strip(await drained(c, ds, monitor)), [
      { type: 'update', group: 'g', pid: p.id, meta: { zone: 'b' }, revision: 0 },
    ])
    await assert.rejects(pg.updateMeta('nope', p, {}), NotJoined)
  })

  it('refuses metadata that is not JSON instead of converting it', async () => {
    const ds = await c.open()
    const pg = ds.groups()
    const p = ds.process('p')
    await assert.rejects(pg.join('g', p, { load: NaN }), InvalidArgument)
    assert.deepEqual(await pg.members('g'), [])
    await pg.join('g', p, { load: 1 })
    await assert.rejects(pg.updateMeta('g', p, { load: Infinity }), InvalidArgument)
    await assert.rejects(pg.updateMeta('g', p, { at: new Date(0) } as never), InvalidArgument)
    assert.deepEqual(await pg.membersWithMeta('g'), [{ pid: p.id, count: 1, meta: { load: 1 } }])
  })

  it('broadcast delivers to each distinct member once; send({ group }) too', async () => {
    const ds = await c.open()
    const pg = ds.groups()
    const sender = ds.process('sender')
    const [a, b] = [ds.process('a'), ds.process('b')]
    await pg.join('g', [a, a, b])
    assert.equal(await pg.broadcast(sender, 'g', 'hello'), 2)
    assert.equal(await pg.broadcastLocal(sender, 'g', 'local'), 2)
    assert.equal(await sender.send({ group: 'g' }, 'via send'), 2)
    assert.equal(await pg.broadcast(sender, 'empty', 'x'), 0)
    const got: Message[] = [await next(a.messages), await next(a.messages), await next(a.messages)]
    assert.deepEqual(
      got.map((m) => m.message),
      ['hello', 'local', 'via send'],
    )
    for (const m of got) assert.equal(m.from, sender.id)
    assert.equal((await next(b.messages)).message, 'hello')
    assert.equal(await sender.send({ group: 'g', scope: 'elsewhere' }, 'x'), 0)
    // In process a message is passed by reference; only JSON crosses the wire, and a message
    // that is not JSON is refused there rather than converted (as for send).
    // One value rule in process and remotely: a non-JSON message is refused.
    await assert.rejects(pg.broadcast(sender, 'g', NaN), InvalidArgument)
  })

  it('thundering_herd: with 10k groups a join still completes', async () => {
    const ds = await c.open()
    const pg = ds.groups()
    const procs = Array.from({ length: 100 }, (_, i) => ds.process(`p${i}`))
    // Pipelined in batches: remotely 10k sequential round trips would only measure latency.
    for (let start = 0; start < 10_000; start += 1000) {
      await Promise.all(
        Array.from({ length: 1000 }, (_, i) =>
          pg.join(`group-${start + i}`, procs[(start + i) % 100] as (typeof procs)[number]),
        ),
      )
    }
    const monitors = Array.from({ length: 20 }, (_, i) => pg.monitor(`group-${i}`))
    const late = ds.process('late')
    await pg.join('group-5000', late)
    assert.deepEqual(sorted(await pg.members('group-5000')), sorted([procs[0]?.id ?? '', late.id]))
    assert.equal((await pg.whichGroups()).length, 10_000)
    for (const monitor of monitors) assert.equal((await next(monitor)).type, 'snapshot')
    for (const monitor of monitors) monitor.close()
  })
})
