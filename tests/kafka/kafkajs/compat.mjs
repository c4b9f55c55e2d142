// kafkajs (a Kafka client Ferry did not write, pinned in package-lock.json)
// against ferryd's Kafka listener. Run by run.sh (ctest kafka.kafkajs):
//
//   KAFKAJS_PREFIX=DIR node compat.mjs --kafka HOST:PORT --ferry FERRY_CLI \
//       --broker tcp://HOST:PORT --summary SUMMARY_JSON
//
// DIR is where `npm ci` installed package-lock.json's kafkajs (DIR/node_modules;
// default: this directory). --kafka is ferryd's Kafka listener, --broker its
// native one: while the group's two kafkajs members are in it, this program
// asks the ferry CLI how Ferry sees the group. It writes the records it
// produced, the offsets, the members and those answers of the ferry CLI to
// SUMMARY_JSON, for crosscheck.mjs to compare with Ferry's view. Exits 0 when
// every check holds, 1 with "FAILED (phase): ..." on the first that does not
// (or when the program takes too long). KAFKAJS_LOG_LEVEL=debug logs every
// request kafkajs sends.
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify, parseArgs } from 'node:util'

const prefix = process.env.KAFKAJS_PREFIX || dirname(fileURLToPath(import.meta.url))
const require = createRequire(join(prefix, 'package.json'))
const { Kafka, logLevel, CompressionTypes, Partitioners, AssignerProtocol } = require('kafkajs')

const { values: opts } = parseArgs({
  options: {
    kafka: { type: 'string' },
    ferry: { type: 'string' },
    broker: { type: 'string' },
    summary: { type: 'string' },
  },
})
if (!opts.kafka || !opts.ferry || !opts.broker || !opts.summary) {
  console.error('usage: node compat.mjs --kafka HOST:PORT --ferry FERRY_CLI --broker tcp://HOST:PORT --summary FILE')
  process.exit(2)
}
const bootstrap = opts.kafka
const summaryPath = opts.summary

// ---- harness ---------------------------------------------------------------

const started = Date.now()
let phase = 'start'
const log = msg => console.log(`[kafkajs ${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`)
const fail = msg => {
  console.error(`FAILED (${phase}): ${msg}`)
  process.exit(1)
}
const check = (cond, msg) => {
  if (!cond) fail(typeof msg === 'function' ? msg() : msg)
}
const eq = (got, want, what) =>
  check(
    JSON.stringify(got) === JSON.stringify(want),
    () => `${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`
  )
const begin = name => {
  phase = name
  log(name)
}
const sleep = ms => new Promise(r => setTimeout(r, ms))
// Polls cond() until it is truthy; fails the phase after timeoutMs.
const waitFor = async (cond, timeoutMs, what) => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await cond()
    if (v) return v
    if (Date.now() > deadline) fail(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}`)
    await sleep(100)
  }
}
// The whole program has 90 s; every step takes well under a second against
// a healthy broker, so this only fires when something hangs (a request that
// is never answered, a group that never settles), naming the phase.
const watchdog = setTimeout(() => fail('the program did not finish within 90 s'), 90_000)
process.on('unhandledRejection', e => fail(`unhandled rejection: ${e && e.stack ? e.stack : e}`))

// kafkajs logs at WARN and above; KAFKAJS_LOG_LEVEL=debug shows every request.
const levelName = (process.env.KAFKAJS_LOG_LEVEL || 'warn').toUpperCase()
check(levelName in logLevel, `KAFKAJS_LOG_LEVEL=${levelName}: not a kafkajs log level`)
// The idempotent producer's client gets no retry policy (null): kafkajs
// then uses its default one, where a limit given here would log a warning
// ("Limiting retries for the idempotent producer may invalidate EoS").
const kafkaConfig = (clientId, retry = { initialRetryTime: 200, retries: 5 }) => ({
  clientId,
  brokers: [bootstrap],
  logLevel: logLevel[levelName],
  connectionTimeout: 3000,
  requestTimeout: 10000,
  retry,
})

const suffix = `${process.pid}-${Date.now().toString(36)}`
const topic = `kafkajs-orders-${suffix}`
const groupId = `kafkajs-billing-${suffix}`
const PARTITIONS = 3
const BACKLOG = 200 // produced before the group exists, read from the beginning
const LIVE = 30 // produced while the group's members are fetching
const canonical = o => Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
const str = b => (b == null ? null : Buffer.isBuffer(b) ? b.toString('utf8') : String(b))

const admin = new Kafka(kafkaConfig('kafkajs-admin')).admin()
const producer = new Kafka(kafkaConfig('kafkajs-producer', null)).producer({
  idempotent: true, // InitProducerId, sequence numbers; acks=-1 implied
  maxInFlightRequests: 1,
  createPartitioner: Partitioners.DefaultPartitioner,
})

// ---- admin: create the topic, see it -------------------------------------

begin('admin: createTopics, listTopics, fetchTopicMetadata, describeCluster, describeConfigs, alterConfigs, createPartitions, deleteTopics')
await admin.connect()
const created = await admin.createTopics({
  topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }],
  waitForLeaders: true,
})
eq(created, true, 'createTopics result (true: created)')
log('creating it again: kafkajs logs the TOPIC_ALREADY_EXISTS answer as an ERROR, expected')
const again = await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }] })
eq(again, false, 'createTopics of an existing topic (false: already there)')

const names = await admin.listTopics()
check(names.includes(topic), () => `listTopics does not show ${topic}: ${JSON.stringify(names)}`)
const { topics: metaTopics } = await admin.fetchTopicMetadata({ topics: [topic] })
eq(metaTopics.map(t => t.name), [topic], 'fetchTopicMetadata topics')
const partitionMetadata = metaTopics[0].partitions
eq(
  partitionMetadata.map(p => [p.partitionId, p.partitionErrorCode, p.leader]).sort((a, b) => a[0] - b[0]),
  [...Array(PARTITIONS).keys()].map(p => [p, 0, 0]),
  'fetchTopicMetadata partitions [id, error, leader]'
)
const cluster = await admin.describeCluster()
eq(cluster.brokers.map(b => `${b.host}:${b.port}`), [bootstrap], 'describeCluster brokers')

const { resources } = await admin.describeConfigs({
  resources: [{ type: 2 /* TOPIC */, name: topic }],
  includeSynonyms: false,
})
eq(resources.map(r => [r.resourceName, r.errorCode]), [[topic, 0]], 'describeConfigs resources [name, error]')
const configNames = resources[0].configEntries.map(e => e.configName)
check(configNames.includes('retention.ms'), () => `describeConfigs has no retention.ms: ${JSON.stringify(configNames)}`)

// DeleteTopics, on a topic of its own (run.sh reads the main one afterwards).
const scratch = `${topic}-scratch`
eq(await admin.createTopics({ topics: [{ topic: scratch, numPartitions: 1, replicationFactor: 1 }] }), true,
  'createTopics of the scratch topic')
// AlterConfigs (it replaces the topic's configs) and CreatePartitions.
await admin.alterConfigs({
  validateOnly: false,
  resources: [{ type: 2, name: scratch, configEntries: [{ name: 'retention.ms', value: '60000' }, { name: 'max.message.bytes', value: '100000' }] }],
})
const { resources: altered } = await admin.describeConfigs({
  resources: [{ type: 2, name: scratch, configNames: ['retention.ms', 'max.message.bytes'] }],
  includeSynonyms: false,
})
eq(
  canonical(Object.fromEntries(altered[0].configEntries.map(e => [e.configName, e.configValue]))),
  { 'max.message.bytes': '100000', 'retention.ms': '60000' },
  'describeConfigs after alterConfigs'
)
let refused = null
try {
  await admin.alterConfigs({ resources: [{ type: 2, name: scratch, configEntries: [{ name: 'retention.ms', value: 'soon' }] }] })
} catch (e) {
  refused = e.type || e.name
}
eq(refused, 'INVALID_CONFIG', 'alterConfigs with a value that is not a number')
await admin.createPartitions({ topicPartitions: [{ topic: scratch, count: 3 }] })
const { topics: grown } = await admin.fetchTopicMetadata({ topics: [scratch] })
eq(grown[0].partitions.length, 3, 'partitions after createPartitions')
let fewer = null
try {
  await admin.createPartitions({ topicPartitions: [{ topic: scratch, count: 2 }] })
} catch (e) {
  fewer = e.type || e.name
}
eq(fewer, 'INVALID_PARTITIONS', 'createPartitions with fewer partitions')
await admin.deleteTopics({ topics: [scratch], timeout: 5000 })
const namesAfterDelete = await admin.listTopics()
check(namesAfterDelete.includes(topic) && !namesAfterDelete.includes(scratch),
  () => `listTopics after deleteTopics ${scratch}: ${JSON.stringify(namesAfterDelete)}`)

// ---- the idempotent producer ----------------------------------------------

// Every record this program produced, by id (its seq header and value).
const records = new Map()
const expectedPartition = Partitioners.DefaultPartitioner()
const produced = Array(PARTITIONS).fill(0) // next offset per partition

const makeMessage = i => {
  const key = `customer-${i % 17}`
  const value = JSON.stringify({ order: i, amount_cents: 100 + i, note: 'é✓' })
  const headers = {
    'ferry.idempotency-key': `kjs-ord-${i}/placed`,
    source: 'kafkajs',
    seq: String(i),
  }
  if (i % 10 === 0) headers.tag = ['first', 'second'] // one key, two values
  return { key, value, headers }
}

// Sends messages [from, to) in one send (one Produce request) and checks
// what the broker answered: one entry per partition written, each starting
// where the previous send on that partition stopped.
const sendRange = async (from, to, compression) => {
  const messages = []
  const counts = Array(PARTITIONS).fill(0)
  for (let i = from; i < to; ++i) {
    const m = makeMessage(i)
    const partition = expectedPartition({ topic, partitionMetadata, message: m })
    records.set(String(i), { ...m, partition, offset: produced[partition] + counts[partition] })
    ++counts[partition]
    messages.push(m)
  }
  const meta = await producer.send({ topic, messages, compression })
  const got = meta
    .map(r => [r.topicName, r.partition, r.errorCode, Number(r.baseOffset)])
    .sort((a, b) => a[1] - b[1])
  const want = counts.flatMap((c, p) => (c ? [[topic, p, 0, produced[p]]] : []))
  eq(got, want, `record metadata of messages ${from}-${to - 1} [topic, partition, error, baseOffset]`)
  counts.forEach((c, p) => (produced[p] += c))
}

begin(`produce: ${BACKLOG} messages, idempotent, one batch gzip`)
await producer.connect()
await sendRange(0, 50)
await sendRange(50, 100, CompressionTypes.GZIP)
await sendRange(100, 150)
await sendRange(150, BACKLOG)
check(produced.every(n => n > 0), () => `keys did not spread over the ${PARTITIONS} partitions: ${produced}`)

const checkEndOffsets = async what => {
  const offsets = await admin.fetchTopicOffsets(topic)
  eq(
    offsets.map(o => [o.partition, Number(o.low), Number(o.high)]).sort((a, b) => a[0] - b[0]),
    produced.map((n, p) => [p, 0, n]),
    `${what}: fetchTopicOffsets [partition, low, high]`
  )
}
await checkEndOffsets('after the backlog')

// ---- a consumer group of two members --------------------------------------

begin('group: two consumers join, subscribed from the beginning')
log('the first member joins alone: its SyncGroup may get REBALANCE_IN_PROGRESS (logged as an ERROR) when the second joins')
// Each member's latest GROUP_JOIN and what it read.
const members = ['a', 'b'].map(name => ({
  name,
  consumer: new Kafka(kafkaConfig(`kafkajs-consumer-${name}`)).consumer({
    groupId,
    sessionTimeout: 6000,
    heartbeatInterval: 300,
    rebalanceTimeout: 10000,
    maxWaitTimeInMs: 500,
  }),
  join: null,
  joins: 0,
  readFrom: new Set(),
}))
const seen = new Map() // id -> [{member, partition, offset}]
const badMessages = []

for (const m of members) {
  m.consumer.on(m.consumer.events.GROUP_JOIN, e => {
    m.join = e.payload
    ++m.joins
    log(`member ${m.name} joined: leader=${e.payload.isLeader} assignment=${JSON.stringify(e.payload.memberAssignment)}`)
  })
  m.consumer.on(m.consumer.events.CRASH, e => fail(`consumer ${m.name} crashed: ${e.payload.error && e.payload.error.stack}`))
  await m.consumer.connect()
  await m.consumer.subscribe({ topics: [topic], fromBeginning: true })
}

const assignmentOf = m => (m.join && m.join.memberAssignment[topic]) || []
// The two members split the partitions: each has some, none has one the
// other has, and together they have all.
const split = () => {
  if (!members.every(m => m.join)) return false
  const [a, b] = members.map(assignmentOf)
  const all = [...a, ...b].sort()
  return (
    a.length > 0 &&
    b.length > 0 &&
    members[0].join.leaderId === members[1].join.leaderId &&
    JSON.stringify(all) === JSON.stringify([...Array(PARTITIONS).keys()])
  )
}

// Members start paused, so neither reads before both are in and the
// partitions are split between them: then every message is read exactly
// once (a member that read before a rebalance may read again after it).
for (const m of members) {
  m.consumer.run({
    eachMessage: async ({ topic: t, partition, message }) => {
      m.readFrom.add(partition)
      const headers = canonical(
        Object.fromEntries(
          Object.entries(message.headers || {}).map(([k, v]) => [k, Array.isArray(v) ? v.map(str) : str(v)])
        )
      )
      const id = headers.seq
      if (t !== topic || id == null || !records.has(id)) {
        badMessages.push({ t, partition, offset: message.offset, headers })
        return
      }
      const list = seen.get(id) || []
      list.push({ member: m.name, partition, offset: Number(message.offset), key: str(message.key), value: str(message.value), headers })
      seen.set(id, list)
    },
  })
  m.consumer.pause([{ topic }])
}
await waitFor(split, 20_000, () =>
  `the partitions to split between both members; joins: ${JSON.stringify(members.map(m => m.join && m.join.memberAssignment))}`)
const joinsAtSplit = members.map(m => m.joins)
log(`split: a=${JSON.stringify(assignmentOf(members[0]))} b=${JSON.stringify(assignmentOf(members[1]))}`)
eq(seen.size, 0, 'messages read while paused')
for (const m of members) m.consumer.resume([{ topic }])

begin(`consume: the backlog of ${BACKLOG}`)
const readIds = () => [...seen.keys()].length
await waitFor(() => readIds() >= BACKLOG, 30_000, () => `all ${BACKLOG} messages; read ${readIds()}`)

begin(`produce while consuming: ${LIVE} more`)
await sendRange(BACKLOG, BACKLOG + LIVE)
await checkEndOffsets('after the live messages')
const TOTAL = BACKLOG + LIVE
await waitFor(() => readIds() >= TOTAL, 20_000, () => `all ${TOTAL} messages; read ${readIds()}`)

begin('check what the group read')
eq(badMessages, [], 'messages that this program did not produce')
eq(members.map(m => m.joins), joinsAtSplit, 'GROUP_JOIN events per member since the split (a rebalance happened)')
const missing = [...records.keys()].filter(id => !seen.has(id))
eq(missing, [], 'messages not read')
const twice = [...seen.entries()].filter(([, l]) => l.length !== 1)
eq(twice, [], 'messages read more than once')
for (const [id, [got]] of seen) {
  const want = records.get(id)
  const wantHeaders = canonical(want.headers)
  eq(
    [got.partition, got.offset, got.key, got.value, got.headers],
    [want.partition, want.offset, want.key, want.value, wantHeaders],
    `message ${id} [partition, offset, key, value, headers]`
  )
  check(assignmentOf(members.find(m => m.name === got.member)).includes(got.partition),
    () => `member ${got.member} read partition ${got.partition}, which it was not assigned`)
}
for (const m of members)
  eq([...m.readFrom].sort(), assignmentOf(m), `partitions member ${m.name} read from`)

// ---- committed offsets, the group as the admin API shows it ---------------

begin('admin: fetchOffsets shows the end offsets (auto commit)')
const committed = async () => {
  const [t] = await admin.fetchOffsets({ groupId, topics: [topic] })
  return t.partitions.map(p => [p.partition, Number(p.offset)]).sort((a, b) => a[0] - b[0])
}
const wantCommitted = produced.map((n, p) => [p, n])
let lastCommitted
await waitFor(
  async () => JSON.stringify((lastCommitted = await committed())) === JSON.stringify(wantCommitted),
  10_000,
  () => `committed offsets ${JSON.stringify(wantCommitted)}; fetchOffsets says ${JSON.stringify(lastCommitted)}`
)

begin('admin: describeGroups, listGroups')
const { groups: described } = await admin.describeGroups([groupId])
eq(described.length, 1, 'describeGroups groups')
const g = described[0]
eq([g.groupId, g.errorCode, g.state, g.protocolType, g.protocol], [groupId, 0, 'Stable', 'consumer', 'RoundRobinAssigner'],
  'describeGroups [group, error, state, protocolType, protocol]')
eq(g.members.map(x => x.memberId).sort(), members.map(m => m.join.memberId).sort(), 'describeGroups member ids')
for (const dm of g.members) {
  const m = members.find(x => x.join.memberId === dm.memberId)
  eq(dm.clientId, `kafkajs-consumer-${m.name}`, `describeGroups client id of member ${m.name}`)
  const assignment = AssignerProtocol.MemberAssignment.decode(dm.memberAssignment)
  eq(assignment && [...(assignment.assignment[topic] || [])].sort(), assignmentOf(m), `describeGroups assignment of member ${m.name}`)
  const subscription = AssignerProtocol.MemberMetadata.decode(dm.memberMetadata)
  eq(subscription && subscription.topics, [topic], `describeGroups subscription of member ${m.name}`)
}
const { groups: listed } = await admin.listGroups()
const mine = listed.filter(x => x.groupId === groupId)
eq(mine, [{ groupId, protocolType: 'consumer' }], 'listGroups entry of the group')

// crosscheck.mjs compares these with what kafkajs said.
begin('ferry CLI: the live group as Ferry sees it')
const run = promisify(execFile) // not execFileSync: the members keep heartbeating
const ferry = async (...args) => {
  const argv = ['--broker', opts.broker, '-o', 'json', ...args]
  let out
  try {
    out = await run(opts.ferry, argv, { encoding: 'utf8', timeout: 20_000 })
  } catch (e) {
    fail(`${opts.ferry} ${argv.join(' ')}: ${e.message}`)
  }
  try {
    return JSON.parse(out.stdout)
  } catch (e) {
    fail(`${opts.ferry} ${argv.join(' ')}: not JSON (${e.message}): ${out.stdout}`)
  }
}
const whileStable = {
  members: members.map(m => ({
    name: m.name,
    member_id: m.join.memberId,
    client_id: `kafkajs-consumer-${m.name}`,
    assignment: assignmentOf(m),
  })),
  ferry_state: await ferry('groups', 'describe', groupId, '--state'),
  ferry_members: await ferry('groups', 'describe', groupId, '--members'),
  ferry_describe: await ferry('groups', 'describe', groupId),
}
eq(members.map(m => m.joins), joinsAtSplit, 'GROUP_JOIN events per member since the split (a rebalance happened)')

// ---- leave cleanly -----------------------------------------------------------

begin('disconnect: members leave, the group is empty and keeps its offsets')
await Promise.all(members.map(m => m.consumer.disconnect()))
const { groups: [after] } = await admin.describeGroups([groupId])
eq([after.state, after.members.length], ['Empty', 0], 'describeGroups after both left [state, members]')
eq(await committed(), wantCommitted, 'committed offsets after both left')
await producer.disconnect()
await admin.disconnect()

writeFileSync(
  summaryPath,
  JSON.stringify(
    {
      topic,
      group: groupId,
      partitions: PARTITIONS,
      end_offsets: produced,
      while_stable: whileStable,
      records: [...records.entries()].map(([id, r]) => ({
        id,
        partition: r.partition,
        offset: r.offset,
        key: r.key,
        value: r.value,
        idempotency_key: r.headers['ferry.idempotency-key'],
      })),
    },
    null,
    1
  )
)
clearTimeout(watchdog)
log(`ok: ${TOTAL} messages over ${PARTITIONS} partitions, end offsets ${JSON.stringify(produced)}`)
