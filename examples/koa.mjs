// Koa 3 served through graceful-listener: app.callback() is the server's
// request listener. Signals, readiness and the pre-stop delay as in
// examples/express.mjs.
//
//   PORT=3000 PRE_STOP_DELAY=5000 node examples/koa.mjs
import http from 'node:http';
import Koa from 'koa';
import { Readiness, closeOnSignals, listen } from 'graceful-listener';

const readiness = new Readiness();
const app = new Koa();
app.use(async (ctx, next) => {
  if (ctx.path !== '/readyz') return next();
  // The probe answers on the raw response; Koa leaves it alone.
  ctx.respond = false;
  readiness.handler(ctx.req, ctx.res);
});
app.use((ctx) => {
  ctx.body = 'hello from koa\n';
});

const server = http.createServer(app.callback());
const listener = await listen(server, { host: process.env.HOST, port: Number(process.env.PORT ?? 3000) });
closeOnSignals(listener, { readiness, preStopDelay: Number(process.env.PRE_STOP_DELAY ?? 5000) });
console.log(`listening on port ${listener.address().port}`);
