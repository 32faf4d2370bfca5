// launch_2018.js: starts the 2018 Node host (npm stencila-node@0.28.15) for the bench,
// as `node launch_2018.js <package dir> <port>`, and prints one JSON line:
// {"port", "token", "disabled"}. `token` is a JWT signed with the host's key, sent as
// `Authorization: Bearer <token>` (the 2018 host's own scheme). The host stops when
// stdin closes (the bench ended) or on SIGINT/SIGTERM.
//
// Two things differ from a plain `stencila-node run`, both said in the bench's output:
// - Native add-ons that are not built here (installed with --ignore-scripts: zeromq 4
//   for JupyterContext downloads libzmq from GitHub, better-sqlite3 4 does not compile
//   against node 18+) are replaced by a module that throws when used, so the host
//   loads; NodeContext, the HTTP server and the host are the package's own code.
// - The host refuses to serve as root; the bench may run as root in a container, so
//   that check is switched off.
'use strict'
const Module = require('module')
const crypto = require('crypto')
const path = require('path')

const pkg = process.argv[2]
const port = Number(process.argv[3])

const disabled = new Map()
for (const name of ['jmp', 'better-sqlite3']) {
  try {
    require(require.resolve(name, { paths: [pkg] }))
  } catch (error) {
    disabled.set(name, error.message.split('\n')[0])
  }
}
const load = Module._load
Module._load = function (request) {
  if (disabled.has(request)) {
    const fail = () => {
      throw new Error(`${request} is not built here: ${disabled.get(request)}`)
    }
    return new Proxy(function () {}, { get: fail, apply: fail, construct: fail })
  }
  return load.apply(this, arguments)
}

const stencila = require(pkg)
require(path.join(pkg, 'lib/host/Host')).isSuperUser = () => false
const jwt = require(require.resolve('jsonwebtoken', { paths: [pkg] }))

;(async () => {
  const key = crypto.randomBytes(32).toString('hex')
  await stencila.start({ address: '127.0.0.1', port, key, quiet: true })
  const token = jwt.sign({}, key, { algorithm: 'HS256' })
  const server = stencila.host._servers.http
  const names = [...disabled].map(([name, why]) => `${name} (${why})`)
  console.log(JSON.stringify({ port: server.port, token, disabled: names }))
  const stop = () => stencila.stop({ quiet: true }).then(() => process.exit(0))
  process.stdin.on('end', stop)
  process.stdin.resume()
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
})().catch(error => {
  console.error(error.stack)
  process.exit(1)
})
