// Express 5 served through graceful-listener: the app is the server's request
// listener. The first SIGTERM/SIGINT turns /readyz to 503, the app keeps
// serving for PRE_STOP_DELAY ms while the load balancer takes it out of
// rotation, then the listener drains (no client reset) and the process exits
// 0; a second signal forces the drain.
//
//   PORT=3000 PRE_STOP_DELAY=5000 node examples/express.mjs
import http from 'node:http';
import express from 'express';
import { Readiness, closeOnSignals, listen } from 'graceful-listener';

const readiness = new Readiness();
const app = express();
app.get('/readyz', readiness.handler);
app.get('/', (_request, response) => {
  response.send('hello from express\n');
});

const server = http.createServer(app);
const listener = await listen(server, { host: process.env.HOST, port: Number(process.env.PORT ?? 3000) });
closeOnSignals(listener, { readiness, preStopDelay: Number(process.env.PRE_STOP_DELAY ?? 5000) });
console.log(`listening on port ${listener.address().port}`);
