// What Ferry's own CLI shows against what kafkajs did (compat.mjs). Run by
// run.sh after compat.mjs:
//
//   node crosscheck.mjs SUMMARY_JSON CONSUMED_JSONL DESCRIBED_JSON LISTED_JSON
//
// SUMMARY_JSON   compat.mjs's summary: the records it produced, where the
//                broker said they went, the group's end offsets, and the
//                ferry CLI's answers while the group's members were in it
// CONSUMED_JSONL ferry -o json consume TOPIC --from-beginning -e
// DESCRIBED_JSON ferry -o json groups describe GROUP (after the members left)
// LISTED_JSON    ferry -o json groups list
// Exits 0 when everything agrees, 1 with "FAILED: ..." when not.
import { readFileSync } from 'node:fs'

const [summaryPath, consumedPath, describedPath, listedPath] = process.argv.slice(2)
if (!listedPath) {
  console.error('usage: node crosscheck.mjs SUMMARY_JSON CONSUMED_JSONL DESCRIBED_JSON LISTED_JSON')
  process.exit(2)
}
const fail = msg => {
  console.error(`FAILED (ferry CLI crosscheck): ${msg}`)
  process.exit(1)
}
const eq = (got, want, what) => {
  if (JSON.stringify(got) !== JSON.stringify(want))
    fail(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`)
}
const readJson = (path, what) => {
  try {
    return JSON.parse(readFileSync(path, 'utf8'))
  } catch (e) {
    fail(`${what} (${path}): ${e.message}`)
  }
}

const summary = readJson(summaryPath, 'compat.mjs summary')
const { topic, group, partitions, end_offsets: ends, while_stable: live } = summary
const byPlace = new Map(summary.records.map(r => [`${r.partition}/${r.offset}`, r]))
const total = summary.records.length

// 1. ferry consume reads every record kafkajs produced, where the broker's
//    answers to kafkajs said it was, with its key, value and headers.
const lines = readFileSync(consumedPath, 'utf8').split('\n').filter(l => l.trim() !== '')
eq(lines.length, total, `records ferry consume ${topic} printed`)
const seen = new Set()
for (const line of lines) {
  let r
  try {
    r = JSON.parse(line)
  } catch (e) {
    fail(`ferry consume printed a line that is not JSON (${e.message}): ${line}`)
  }
  const place = `${r.partition}/${r.offset}`
  const want = byPlace.get(place)
  if (!want) fail(`ferry consume shows a record kafkajs did not produce at partition/offset ${place}: ${line}`)
  if (seen.has(place)) fail(`ferry consume printed partition/offset ${place} twice`)
  seen.add(place)
  const h = r.headers || {}
  eq(
    [r.topic, r.key, r.value, h['ferry.idempotency-key'], h.source, h.seq],
    [topic, want.key, want.value, want.idempotency_key, 'kafkajs', want.id],
    `ferry consume record at ${place} [topic, key, value, ferry.idempotency-key, source, seq]`
  )
}
eq(seen.size, total, 'distinct records ferry consume printed')

// 2. While the two kafkajs members were in the group, Ferry showed them:
//    a Kafka group, Stable, its protocol, each member's client id, topics
//    and assignment, and each partition's owner.
const st = live.ferry_state
eq([st.group, st.state, st.members, st.strategy], [group, 'Stable', 2, 'kafka consumer/RoundRobinAssigner'],
  'ferry groups describe --state while the members were in [group, state, members, strategy]')
const fm = live.ferry_members
eq([fm.group, fm.state, fm.members.length], [group, 'Stable', 2], 'ferry groups describe --members [group, state, members]')
const ownerOf = new Map()
for (const m of live.members) {
  const f = fm.members.find(x => x.member_id === m.member_id)
  if (!f) fail(`ferry groups describe --members does not show kafkajs member ${m.member_id}: ${JSON.stringify(fm.members)}`)
  eq(
    [f.client_id, f.topics, f.assignment.map(a => [a.topic, a.partition]).sort((a, b) => a[1] - b[1])],
    [m.client_id, [topic], m.assignment.map(p => [topic, p])],
    `ferry groups describe --members, member ${m.name} [client id, topics, assignment]`
  )
  for (const p of m.assignment) ownerOf.set(p, m.member_id)
}
const fd = live.ferry_describe
eq([fd.group, fd.state, fd.members], [group, 'Stable', 2], 'ferry groups describe while the members were in [group, state, members]')
eq(
  fd.partitions.map(p => [p.topic, p.partition, p.consumer_id, p.log_end_offset]).sort((a, b) => a[1] - b[1]),
  ends.map((end, p) => [topic, p, ownerOf.get(p), end]),
  'ferry groups describe while the members were in [topic, partition, owner, log end]'
)

// 3. After they left: the group is empty and keeps what kafkajs committed
//    (the end of every partition), with no lag.
const d = readJson(describedPath, 'ferry groups describe')
eq([d.group, d.state, d.members], [group, 'Empty', 0], 'ferry groups describe after the members left [group, state, members]')
eq(
  d.partitions.map(p => [p.topic, p.partition, p.current_offset, p.log_end_offset, p.lag]).sort((a, b) => a[1] - b[1]),
  ends.map((end, p) => [topic, p, end, end, 0]),
  'ferry groups describe after the members left [topic, partition, committed, log end, lag]'
)
eq(d.partitions.length, partitions, 'partitions ferry groups describe shows')

const listed = readJson(listedPath, 'ferry groups list')
const mine = listed.filter(g => g.group === group).map(g => [g.group, g.state, g.members])
eq(mine, [[group, 'Empty', 0]], 'ferry groups list entry of the group')

console.log(
  `crosscheck: ok - ferry consume sees all ${total} records where kafkajs was told they are; ` +
    `ferry groups describe showed both members and their assignments and shows the committed end offsets ${JSON.stringify(ends)}`
)
