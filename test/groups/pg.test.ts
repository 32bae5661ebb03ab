// Erlang/OTP pg conformance, modelled on pg_SUITE's single-node cases.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createDataspace, InvalidArgument, NotJoined } from '../../src/index.js'
import type { GroupEvent } from '../../src/index.js'
import { queued } from '../engine/helpers.js'

const sorted = (pids: readonly string[]): string[] => [...pids].sort()
const strip = (events: GroupEvent[]) =>
  events.map((e) => ('revision' in e ? { ...e, revision: 0 } : e))

describe('process groups (pg)', () => {
  it('single: join, multiplicity, leave, which_groups, empty groups vanish', async () => {
    const ds = createDataspace()
    const pg = ds.groups()
    const p = ds.process('p')
    assert.equal(await pg.join('g', p), 'ok')
    assert.deepEqual(await pg.members('g'), [p.id])
    await pg.join('g', [p, p])
    assert.deepEqual(await pg.members('g'), [p.id, p.id, p.id])
    assert.deepEqual(await pg.whichGroups(), ['g'])
    assert.deepEqual(await pg.whichLocalGroups(), ['g'])
    assert.deepEqual(await pg.localMembers('g'), [p.id, p.id, p.id])
    assert.equal(await pg.leave('g', p), 'ok')
    assert.equal(await pg.leave('g', [p, p]), 'ok')
    assert.deepEqual(await pg.members('g'), [])
    assert.deepEqual(await pg.whichGroups(), [], 'an empty group does not exist')
    assert.equal(await pg.leave('g', p), 'not_joined')
    await ds.close()
  })

  it('leave of a list: members removed, non-members skipped; not_joined only if none were', async () => {
    const ds = createDataspace()
    const pg = ds.groups()
    const [a, b, c] = [ds.process('a'), ds.process('b'), ds.process('c')]
    await pg.join('g', [a, b])
    assert.equal(await pg.leave('g', [a, c]), 'ok')
    assert.deepEqual(await pg.members('g'), [b.id])
    assert.equal(await pg.leave('g', [a, c]), 'not_joined')
    await ds.close()
  })

  it('process_owner_check: only live processes of this dataspace join; nothing of a bad list applies', async () => {
    const ds = createDataspace()
    const pg = ds.groups()
    const alive = ds.process('alive')
    const dead = ds.process('dead')
    await dead.exit()
    await assert.rejects(pg.join('g', dead), InvalidArgument)
    await assert.rejects(pg.join('g', 'local/nobody#42'), InvalidArgument)
    await assert.rejects(pg.join('g', [alive, dead]), InvalidArgument)
    await assert.rejects(pg.join('g', []), InvalidArgument)
    await assert.rejects(pg.join('', alive), InvalidArgument)
    assert.deepEqual(await pg.members('g'), [])
    const other = createDataspace()
    await assert.rejects(other.groups().join('g', alive), InvalidArgument)
    await Promise.all([ds.close(), other.close()])
  })

  it('leave_exit_race: members leave with their process, in the exit commit', async () => {
    const ds = createDataspace()
    const pg = ds.groups()
    const p = ds.process('p')
    await pg.join('g1', [p, p, p])
    await pg.join('g2', p)
    const before = ds.revision
    await p.exit()
    assert.equal(ds.revision, before + 1)
    assert.deepEqual(await pg.whichGroups(), [])
    assert.equal(await pg.leave('g1', p), 'not_joined')
    await ds.close()
  })

  it('monitor: snapshot, then join/leave with multiplicity; a batch join is one event', async () => {
    const ds = createDataspace()
    const pg = ds.groups()
    const [a, b] = [ds.process('a'), ds.process('b')]
    await pg.join('g', a)
    const monitor = pg.monitor('g')
    await pg.join('g', [a, b, b])
    await pg.join('other', a)
    await pg.leave('g', b)
    await a.exit()
    assert.deepEqual(strip(await queued(monitor)), [
      { type: 'snapshot', groups: { g: [a.id] }, revision: 0 },
      { type: 'join', group: 'g', pids: [a.id, b.id, b.id], revision: 0 },
      { type: 'leave', group: 'g', pids: [b.id], revision: 0 },
      { type: 'leave', group: 'g', pids: [a.id, a.id], revision: 0 },
    ])
    await ds.close()
  })

  it('monitor_scope: the whole scope as { group: pids }, then events of every group', async () => {
    const ds = createDataspace()
    const pg = ds.groups('s')
    const p = ds.process('p')
    await pg.join('g1', [p, p])
    await pg.join('g2', p)
    const monitor = pg.monitor()
    await pg.join('g3', p)
    await p.exit()
    const events = strip(await queued(monitor))
    assert.deepEqual(events[0], {
      type: 'snapshot',
      groups: { g1: [p.id, p.id], g2: [p.id] },
      revision: 0,
    })
    assert.deepEqual(events[1], { type: 'join', group: 'g3', pids: [p.id], revision: 0 })
    const leaves = events.slice(2)
    assert.deepEqual(
      leaves.map((e) => e.type === 'leave' && `${e.group}:${e.pids.length}`).sort(),
      ['g1:2', 'g2:1', 'g3:1'],
    )
    await ds.close()
  })

  it('multi_monitor and demonitor: each monitor gets every event; a closed one gets none', async () => {
    const ds = createDataspace()
    const pg = ds.groups()
    const p = ds.process('p')
    const one = pg.monitor('g')
    const two = pg.monitor('g')
    await pg.join('g', p)
    two.close()
    await pg.leave('g', p)
    assert.deepEqual(
      (await queued(one)).map((e) => e.type),
      ['snapshot', 'join', 'leave'],
    )
    assert.deepEqual(await queued(two), [])
    assert.equal(await two.closed, 'closed')
    await ds.close()
  })

  it('monitor_self: a process monitoring a group it joins sees its own join and exit', async () => {
    const ds = createDataspace()
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
    await ds.close()
  })

  it('scopes are independent', async () => {
    const ds = createDataspace()
    const p = ds.process('p')
    await ds.groups('one').join('g', p)
    assert.deepEqual(await ds.groups('two').members('g'), [])
    assert.deepEqual(await ds.groups('one').members('g'), [p.id])
    assert.deepEqual(await ds.groups().whichGroups(), [])
    await ds.close()
  })

  it('metadata: membersWithMeta, updateMeta emits update, NotJoined for non-members', async () => {
    const ds = createDataspace()
    const pg = ds.groups()
    const p = ds.process('p')
    await pg.join('g', p, { zone: 'a' })
    const monitor = pg.monitor('g')
    await pg.updateMeta('g', p, { zone: 'b' })
    assert.deepEqual(await pg.membersWithMeta('g'), [{ pid: p.id, count: 1, meta: { zone: 'b' } }])
    const events = strip(await queued(monitor))
    assert.deepEqual(events[1], {
      type: 'update',
      group: 'g',
      pid: p.id,
      meta: { zone: 'b' },
      revision: 0,
    })
    await assert.rejects(pg.updateMeta('nope', p, {}), NotJoined)
    await ds.close()
  })

  it('broadcast delivers to each distinct member once; send({ group }) too', async () => {
    const ds = createDataspace()
    const pg = ds.groups()
    const sender = ds.process('sender')
    const [a, b] = [ds.process('a'), ds.process('b')]
    await pg.join('g', [a, a, b])
    assert.equal(await pg.broadcast(sender, 'g', 'hello'), 2)
    assert.equal(await pg.broadcastLocal(sender, 'g', 'local'), 2)
    assert.equal(await sender.send({ group: 'g' }, 'via send'), 2)
    assert.equal(await pg.broadcast(sender, 'empty', 'x'), 0)
    const got: unknown[] = []
    for await (const message of a.messages) {
      got.push(message.message)
      if (got.length === 3) break
    }
    assert.deepEqual(got, ['hello', 'local', 'via send'])
    assert.equal(await sender.send({ group: 'g', scope: 'elsewhere' }, 'x'), 0)
    await ds.close()
  })

  it('thundering_herd: with 10k groups a join still completes fast', async () => {
    const ds = createDataspace()
    const pg = ds.groups()
    const procs = Array.from({ length: 100 }, (_, i) => ds.process(`p${i}`))
    for (let g = 0; g < 10_000; g++)
      await pg.join(`group-${g}`, procs[g % 100] as (typeof procs)[number])
    const monitors = Array.from({ length: 20 }, (_, i) => pg.monitor(`group-${i}`))
    const late = ds.process('late')
    await pg.join('group-5000', late)
    assert.deepEqual(sorted(await pg.members('group-5000')), sorted([procs[0]?.id ?? '', late.id]))
    assert.equal((await pg.whichGroups()).length, 10_000)
    for (const monitor of monitors) monitor.close()
    await ds.close()
  })
})
