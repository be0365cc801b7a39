// The Node peer of the TCP echo benchmark (issue 5, docs/bench.md): the net
// module, each 'data' event written back.
//
//   node echo_server.js   listens on 127.0.0.1, a port the system picks,
//                         prints "port N" and serves until killed
'use strict';
const net = require('net');

const server = net.createServer({ noDelay: true }, (sock) => {
  sock.setNoDelay(true);
  sock.on('data', (d) => sock.write(d));
  sock.on('error', () => sock.destroy());
});
server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => {
  process.stdout.write(`port ${server.address().port}\n`);
});
