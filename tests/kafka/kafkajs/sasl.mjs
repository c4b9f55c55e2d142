// kafkajs over SASL against ferryd with security on, run by sasl.sh (ctest
// kafka.kafkajs_sasl, and kafka.kafkajs_tls with TLS):
//
//   KAFKAJS_PREFIX=DIR node sasl.mjs --kafka HOST:PORT --user U --password P
//       [--mechanism scram-sha-256|plain] [--ca CA.pem [--cert C.pem --key C.key]]
//
// The user may create, write and read topics named js-* and read group
// js-group (sasl.sh adds those ACLs). Checks: a wrong password is refused
// with kafkajs's SASL authentication error; the right one creates a topic,
// produces and consumes in the group; a topic outside the rules is refused
// with TOPIC_AUTHORIZATION_FAILED. With --ca the connections are TLS,
// trusting that CA; with --cert, a client with that certificate and no
// SASL at all is the same user (mTLS). Exits 0 when every check holds.
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { readFileSync } from 'node:fs'

const prefix = process.env.KAFKAJS_PREFIX || dirname(fileURLToPath(import.meta.url))
const require = createRequire(join(prefix, 'package.json'))
const { Kafka, logLevel, Partitioners } = require('kafkajs')

const { values: opts } = parseArgs({
  options: {
    kafka: { type: 'string' },
    user: { type: 'string' },
    password: { type: 'string' },
    mechanism: { type: 'string', default: 'scram-sha-256' },
    ca: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
  },
})
const ssl = opts.ca ? { ca: [readFileSync(opts.ca, 'utf8')] } : undefined
const fail = (phase, why) => {
  console.error(`FAILED (${phase}): ${why}`)
  process.exit(1)
}
setTimeout(() => fail('time', 'took more than 90 s'), 90_000).unref()

const client = (password) =>
  new Kafka({
    clientId: 'ferry-kafkajs-sasl',
    brokers: [opts.kafka],
    ssl,
    sasl: { mechanism: opts.mechanism, username: opts.user, password },
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
    connectionTimeout: 5000,
  })

// 1. A wrong password: refused at authentication.
{
  const admin = client('not-the-password').admin()
  let error
  try {
    await admin.connect()
    await admin.listTopics()
  } catch (e) {
    error = e
  } finally {
    await admin.disconnect().catch(() => {})
  }
  if (!error) fail('wrong password', 'a wrong password was accepted')
  if (error.name !== 'KafkaJSSASLAuthenticationError')
    fail('wrong password', `expected KafkaJSSASLAuthenticationError, got ${error.name}: ${error.message}`)
  console.log(`wrong password: refused (${error.name})`)
}

// 2. The right password: admin, producer, group consumer.
const kafka = client(opts.password)
const admin = kafka.admin()
await admin.connect()
await admin.createTopics({ topics: [{ topic: 'js-orders', numPartitions: 1 }] })
const listed = await admin.listTopics()
if (!listed.includes('js-orders')) fail('admin', `js-orders not listed: ${listed}`)
if (listed.some((t) => !t.startsWith('js-')))
  fail('admin', `topics outside the user's rules are listed: ${listed}`)
const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
await producer.connect()
await producer.send({ topic: 'js-orders', messages: [{ key: 'o1', value: 'paid' }] })
console.log('produced to js-orders')

// 3. Outside the rules: TOPIC_AUTHORIZATION_FAILED.
{
  let error
  try {
    await producer.send({ topic: 'forbidden', messages: [{ value: 'x' }] })
  } catch (e) {
    error = e
  }
  const type = error?.type || error?.cause?.type || ''
  if (!error || !`${type} ${error.message}`.match(/AUTHORIZATION|authoriz/i))
    fail('acl', `expected a topic authorization failure, got ${error ? `${error.name} ${type}: ${error.message}` : 'success'}`)
  console.log(`forbidden topic: refused (${type || error.message})`)
}
await producer.disconnect()

const consumer = kafka.consumer({ groupId: 'js-group' })
await consumer.connect()
await consumer.subscribe({ topic: 'js-orders', fromBeginning: true })
const got = await new Promise((resolve, reject) => {
  consumer
    .run({ eachMessage: async ({ message }) => resolve(`${message.key}=${message.value}`) })
    .catch(reject)
})
if (got !== 'o1=paid') fail('consume', `read ${got}`)
console.log(`consumed in group js-group: ${got}`)
await consumer.disconnect()
await admin.disconnect()

// 4. mTLS: the certificate alone is the user, with the user's rules.
if (opts.cert) {
  const certified = new Kafka({
    clientId: 'ferry-kafkajs-mtls',
    brokers: [opts.kafka],
    ssl: { ...ssl, cert: readFileSync(opts.cert, 'utf8'), key: readFileSync(opts.key, 'utf8') },
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
    connectionTimeout: 5000,
  }).admin()
  await certified.connect()
  const seen = await certified.listTopics()
  await certified.disconnect()
  if (!seen.includes('js-orders') || seen.some((t) => !t.startsWith('js-')))
    fail('mtls', `the certificate's user should see the js- topics only, saw ${seen}`)
  console.log(`client certificate: admitted as ${opts.user}, sees ${seen}`)
}
console.log('sasl.mjs: ok')
process.exit(0)
