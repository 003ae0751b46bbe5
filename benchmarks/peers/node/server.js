// Node.js Socket.IO peer: socket.io on Node's http server with @socket.io/redis-adapter.
//
// The setup of Socket.IO's docs for several processes: a node-redis client and its duplicate
// handed to createAdapter(pubClient, subClient, { key }), ws's optional native add-ons installed
// (docs: "Performance tuning"). Clients `join` one room (acknowledged); each `ask` is broadcast to
// that room as a `question.created` event of the same shape and size as roomcast's; the adapter
// relays it through Redis to the other processes.
//
//   node benchmarks/peers/node/server.js --port 18605 --redis redis://127.0.0.1:6379/0 --key NAME
"use strict";

const { createServer } = require("node:http");
const { randomUUID } = require("node:crypto");
const { parseArgs } = require("node:util");
const { Server } = require("socket.io");
const { createClient } = require("redis");
const { createAdapter } = require("@socket.io/redis-adapter");

const { values: args } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string" },
    redis: { type: "string" },
    key: { type: "string" },
  },
});

function questionEvent(room, text, userId, name) {
  // benchmarks/baseline.py question_event: roomcast's fields, in roomcast's order
  const now = new Date().toISOString().replace("Z", "000Z");
  return {
    type: "question.created",
    room,
    question: {
      id: randomUUID(),
      meeting_id: room.replace(/^meeting:/, "").slice(0, 36),
      text,
      status: "live",
      pinned: false,
      votes: 0,
      author: { id: userId, display_name: name },
      anonymous: false,
      answer: null,
      created_at: now,
      updated_at: now,
      answered_at: null,
      flagged: false,
      dismiss_reason: null,
      merged_into: null,
    },
  };
}

async function main() {
  const pubClient = createClient({ url: args.redis });
  const subClient = pubClient.duplicate();
  await Promise.all([pubClient.connect(), subClient.connect()]);

  const httpServer = createServer((req, res) => {
    res.writeHead(req.url === "/health" ? 200 : 404, { "content-type": "text/plain" });
    res.end("ok\n");
  });
  const io = new Server(httpServer, { adapter: createAdapter(pubClient, subClient, { key: args.key }) });

  io.on("connection", (socket) => {
    socket.on("join", (room, ack) => {
      socket.join(room);
      if (typeof ack === "function") ack(true);
    });
    socket.on("ask", (data) => {
      io.to(data.room).emit("question.created", questionEvent(data.room, data.text, socket.id, "guest"));
    });
  });

  const stop = () => {
    io.close();
    Promise.allSettled([pubClient.quit(), subClient.quit()]).then(() => process.exit(0));
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  httpServer.listen({ host: args.host, port: Number(args.port), backlog: 8192 });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
