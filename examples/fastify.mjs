// Fastify 5 served through graceful-listener. Fastify creates its server
// itself: once the app is ready, listen() feeds app.server in place of
// app.listen(). The drain runs first (exit: false), then app.close() runs
// the onClose hooks (database pools…) with no request left, then the
// process exits with the drain's exit code. Signals, readiness and the
// pre-stop delay as in examples/express.mjs.
//
//   PORT=3000 PRE_STOP_DELAY=5000 node examples/fastify.mjs
import Fastify from 'fastify';
import { Readiness, closeOnSignals, listen } from 'graceful-listener';

const readiness = new Readiness();
const app = Fastify();
app.get('/readyz', (request, reply) => {
  reply.hijack();
  readiness.handler(request.raw, reply.raw);
});
app.get('/', async () => 'hello from fastify\n');

await app.ready();
const listener = await listen(app.server, { host: process.env.HOST, port: Number(process.env.PORT ?? 3000) });
const shutdown = closeOnSignals(listener, {
  readiness,
  preStopDelay: Number(process.env.PRE_STOP_DELAY ?? 5000),
  exit: false,
});
shutdown.done.then(async (report) => {
  await app.close();
  process.exit(report.exitCode);
});
console.log(`listening on port ${listener.address().port}`);
