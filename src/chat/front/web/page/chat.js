// sockit chat in the browser. One JSON object per WebSocket text frame each way
// (see src/chat/front/web/json.rs). Peer text only ever goes into the page
// through textContent, never as HTML.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const log = $("log"), input = $("input"), form = $("form"), stateEl = $("state");
  const roomsEl = $("rooms"), membersEl = $("members"), meEl = $("me"), roomEl = $("room");
  const reconnectBtn = $("reconnect");

  const MAX_LINES = 1000;
  const BACKOFF_MIN = 500, BACKOFF_MAX = 30000;
  const ROOMS_REFRESH = 1000;
  const JOINS_SHOWN = 20;
  const store = {
    get(k) { try { return localStorage.getItem("sockit." + k); } catch (_) { return null; } },
    set(k, v) { try { localStorage.setItem("sockit." + k, v); } catch (_) { /* private mode */ } },
  };

  let ws = null, attempt = 0, timer = null, stopped = false;
  // Set on each connect until the welcome: the room to go back to is decided then.
  // After the welcome, while the remembered nick is still being taken: the
  // room to go back to (asked for once the nick change lands, so the room
  // move cannot overtake it).
  let rejoin = false, rejoinRoom = "", roomsTimer = null;
  let me = store.get("nick"), room = store.get("room");
  let members = [];
  // Where the page stands in its room's history: the last event shown
  // (sequence number) of `room`, in database `epoch`. After a reconnect it
  // asks for what it missed (`resume`); nothing past a hole is shown, and
  // nothing twice.
  // The server's cursor events say which database it is; until one comes on
  // this connection (`confirmed`), nothing is filtered. `target`: after a
  // reconnect, the room to resume once the server confirms the epoch.
  const cur = { room: null, epoch: null, last: null };
  let resuming = false, confirmed = false, target = null;
  const typed = []; let typedAt = 0;

  // ---- rendering -------------------------------------------------------------

  // FNV-1a of the lower-cased nick, as the terminal client colours nicks.
  function colorClass(nick) {
    let h = 0x811c9dc5;
    const s = nick.toLowerCase();
    for (let i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i) & 0xff;
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    return "c" + (h % 12);
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function nickEl(nick) {
    return el("bdi", "nick " + colorClass(nick), nick);
  }

  function time(ts) {
    const d = ts ? new Date(ts) : new Date();
    if (isNaN(d)) return "";
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  }

  function line(kind, parts, ts, history) {
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    const li = el("li", "ev-" + kind + (history ? " ev-history" : ""));
    const t = el("time", "ts", time(ts));
    if (ts) t.dateTime = ts;
    li.appendChild(t);
    for (const p of parts) li.appendChild(typeof p === "string" ? document.createTextNode(p) : p);
    log.appendChild(li);
    while (log.childElementCount > MAX_LINES) log.firstElementChild.remove();
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  const text = (s) => el("bdi", "text", s);
  const local = (s) => line("system", [text(s)]);
  const localError = (s) => line("error", [text(s)]);

  function setState(cls, label) {
    stateEl.className = "state " + cls;
    stateEl.textContent = label;
  }

  // The nick shown; `remember` keeps it for reconnects (a nick the member
  // chose, not the guest name a server hands out before the /nick lands).
  function setMe(nick, remember) {
    me = nick;
    meEl.textContent = nick || "-";
    if (nick && remember) store.set("nick", nick);
  }

  function setRoom(r) {
    room = r;
    roomEl.textContent = r || "-";
    if (r) store.set("room", r);
    for (const b of roomsEl.querySelectorAll("button")) {
      b.setAttribute("aria-current", b.dataset.room === r ? "true" : "false");
    }
  }

  function renderMembers() {
    membersEl.replaceChildren();
    members.sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase()));
    for (const n of members) {
      const b = el("button", null);
      b.type = "button";
      b.appendChild(nickEl(n));
      b.setAttribute("aria-label", "private message to " + n);
      b.addEventListener("click", () => {
        input.value = "/msg " + n + " ";
        input.focus();
      });
      const li = el("li");
      li.appendChild(b);
      membersEl.appendChild(li);
    }
  }

  function renderRooms(list) {
    roomsEl.replaceChildren();
    for (const r of list) {
      const b = el("button", null);
      b.type = "button";
      b.dataset.room = r.name;
      b.setAttribute("aria-current", r.name === room ? "true" : "false");
      b.appendChild(el("bdi", null, r.name));
      if (typeof r.members === "number") b.appendChild(el("span", "count", " (" + r.members + ")"));
      b.addEventListener("click", () => { send({ type: "join", room: r.name }); input.focus(); });
      const li = el("li");
      li.appendChild(b);
      roomsEl.appendChild(li);
    }
  }

  // ---- events from the server --------------------------------------------------

  function sendResume() {
    if (resuming || cur.room === null || cur.epoch === null || cur.last === null) return;
    resuming = send({ type: "resume", room: cur.room, epoch: cur.epoch, after: cur.last });
  }

  // Whether to show a room event: not twice, not past a hole (a resume
  // fills it). History outside a resume (on entering a room, /history) is
  // shown as it comes.
  function admit(ev, h) {
    if (!confirmed || typeof ev.seq !== "number" || ev.room !== cur.room || cur.last === null) return true;
    if (h && !resuming) return true;
    // A `joins` object covers seq..last_seq.
    const last = typeof ev.last_seq === "number" && ev.last_seq > ev.seq ? ev.last_seq : ev.seq;
    if (last <= cur.last) return false;
    // The room's event before this one (in a cluster, numbers are places in
    // the shared room log, so the server says when it is not seq - 1).
    const prev = typeof ev.prev === "number" ? ev.prev : ev.seq - 1;
    if (prev > cur.last) { sendResume(); return false; }
    cur.last = last;
    return true;
  }

  function onEvent(ev) {
    const h = ev.history === true;
    if (ev.type === "cursor") {
      if (typeof ev.seq !== "number" || typeof ev.epoch !== "string") return;
      if (target !== null && ev.epoch === cur.epoch) {
        // Back on the same history: resume the room we were in once we are
        // in it again (the lobby's cursor on the way is not ours).
        if (ev.room === target) {
          confirmed = true; target = null;
          resuming = send({ type: "resume", room: cur.room, epoch: cur.epoch, after: cur.last });
        }
        return;
      }
      if (target !== null) local("the server's history was reset");
      target = null;
      if (confirmed && ev.room === cur.room && ev.epoch === cur.epoch && cur.last !== null) {
        if (ev.seq <= cur.last) resuming = false; // caught up
        return;
      }
      // Entered a room (or another history): start from here.
      cur.room = ev.room; cur.epoch = ev.epoch; cur.last = ev.seq;
      confirmed = true; resuming = false;
      return;
    }
    if (ev.type === "gap") {
      if (ev.room === cur.room) { cur.last = null; resuming = false; }
      line("error", ["! ", text(typeof ev.text === "string" ? ev.text : "gap")], ev.ts, false);
      while (log.firstElementChild) log.firstElementChild.remove();
      local("history was reset or pruned: showing the latest");
      send({ type: "history" });
      return;
    }
    if (!admit(ev, h)) return;
    // What a resume brings was missed, not past: it changes the page's
    // state (own nick, members) as live events do.
    const live = !h || resuming;
    const s = (v) => (typeof v === "string" ? v : "");
    switch (ev.type) {
      case "message":
        line("message", [nickEl(s(ev.nick)), " ", text(s(ev.text))], ev.ts, h); break;
      case "action":
        line("action", ["* ", nickEl(s(ev.nick)), " ", text(s(ev.text))], ev.ts, h); break;
      case "private":
        line("private", ["*", nickEl(s(ev.from)), "* ", text(s(ev.text))], ev.ts, h); break;
      case "private_sent":
        line("private_sent", ["-> *", nickEl(s(ev.to)), "* ", text(s(ev.text))], ev.ts, h); break;
      case "join":
        line("join", ["* ", nickEl(s(ev.nick)), " joined ", text(s(ev.room))], ev.ts, h);
        if (live && ev.nick === me) { setRoom(s(ev.room)); send({ type: "who" }); send({ type: "rooms" }); }
        else if (live && ev.room === room && !members.includes(ev.nick)) {
          members.push(s(ev.nick)); renderMembers(); refreshRooms();
        }
        break;
      case "joins": {
        // Several joins in a row (a join storm), in one object.
        const nicks = Array.isArray(ev.nicks) ? ev.nicks.filter((n) => typeof n === "string") : [];
        const shown = nicks.slice(0, JOINS_SHOWN);
        const parts = ["* "];
        shown.forEach((n, i) => { if (i) parts.push(", "); parts.push(nickEl(n)); });
        if (nicks.length > shown.length) parts.push(" and " + (nicks.length - shown.length) + " more");
        parts.push(" joined ", text(s(ev.room)));
        line("join", parts, ev.ts, h);
        if (!live) break;
        if (nicks.includes(me)) { setRoom(s(ev.room)); send({ type: "who" }); send({ type: "rooms" }); break; }
        if (ev.room === room) {
          for (const n of nicks) if (!members.includes(n)) members.push(n);
          renderMembers(); refreshRooms();
        }
        break;
      }
      case "leave":
        line("leave", ["* ", nickEl(s(ev.nick)), " left (", text(s(ev.reason)), ")"], ev.ts, h);
        if (live) { members = members.filter((n) => n !== ev.nick); renderMembers(); refreshRooms(); }
        break;
      case "nick":
        line("nick", ["* ", nickEl(s(ev.old)), " is now ", nickEl(s(ev.new))], ev.ts, h);
        if (live) {
          if (ev.old === me) { setMe(s(ev.new), true); rejoinNow(); }
          members = members.map((n) => (n === ev.old ? s(ev.new) : n));
          renderMembers();
        }
        break;
      case "welcome": {
        setMe(s(ev.nick), false);
        const was = room;
        if (ev.room) setRoom(s(ev.room));
        if (rejoin) {
          rejoin = false;
          rejoinRoom = was && ev.room && was !== ev.room ? was : "";
          // Without a nick to take back, or with it already, go at once.
          const wanted = store.get("nick");
          if (!wanted || wanted === me) rejoinNow();
        }
        break;
      }
      case "members":
        if (Array.isArray(ev.nicks)) { members = ev.nicks.filter((n) => typeof n === "string"); renderMembers(); }
        break;
      case "rooms":
        if (Array.isArray(ev.rooms)) renderRooms(ev.rooms.filter((r) => r && typeof r.name === "string"));
        break;
      case "system":
        line("system", ["* ", text(s(ev.text))], ev.ts, h); break;
      case "error":
        line("error", ["! ", text(s(ev.text))], ev.ts, h);
        rejoinNow(); // e.g. the nick was taken: go back to the room anyway
        break;
      default:
        break; // a newer server's event: ignore rather than guess
    }
  }

  // ---- connection ------------------------------------------------------------

  // Back to the room the page was in, once (see `rejoinRoom`).
  function rejoinNow() {
    if (!rejoinRoom) return;
    const r = rejoinRoom;
    rejoinRoom = "";
    send({ type: "join", room: r });
  }

  // The room counts change as people come, go and move: ask again, at most
  // once a second however busy the room is.
  function refreshRooms() {
    if (roomsTimer) return;
    roomsTimer = setTimeout(() => { roomsTimer = null; send({ type: "rooms" }); }, ROOMS_REFRESH);
  }

  function send(obj) {
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(obj));
      return true;
    }
    return false;
  }

  function connect() {
    clearTimeout(timer);
    stopped = false;
    reconnectBtn.hidden = true;
    setState("connecting", attempt ? "reconnecting" : "connecting");
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
    let sock;
    try { sock = new WebSocket(url); } catch (e) { schedule(); return; }
    ws = sock;
    sock.onopen = () => {
      attempt = 0;
      setState("connected", "connected");
      // Keep the nick across reconnects; the room is asked for once the
      // server says where it put this member (the welcome), and only if
      // that is not already the room it was in.
      const wanted = store.get("nick");
      if (wanted) send({ type: "nick", nick: wanted });
      rejoin = true;
      rejoinRoom = "";
      // After a drop: resume the room we were in (see the cursor events).
      confirmed = false; resuming = false;
      target = cur.room !== null && cur.last !== null && cur.epoch !== null ? cur.room : null;
      send({ type: "rooms" });
      send({ type: "who" });
    };
    sock.onmessage = (m) => {
      if (typeof m.data !== "string") return;
      let ev;
      try { ev = JSON.parse(m.data); } catch (_) { return; }
      if (ev && typeof ev === "object") onEvent(ev);
    };
    sock.onclose = (c) => {
      if (ws !== sock) return;
      ws = null;
      // 1000 after /quit, 1008 (kicked, flooding): stay out until asked.
      if (stopped || c.code === 1008) {
        setState("disconnected", c.code === 1008 ? "disconnected by the server" : "disconnected");
        if (c.reason) local("closed: " + c.reason);
        reconnectBtn.hidden = false;
        return;
      }
      schedule();
    };
  }

  // 0.5 s doubling to 30 s, each delay jittered to 50-100 % of itself.
  function schedule() {
    const base = Math.min(BACKOFF_MAX, BACKOFF_MIN * Math.pow(2, attempt));
    const delay = Math.round(base * (0.5 + Math.random() / 2));
    attempt++;
    setState("disconnected", "disconnected, retrying in " + Math.ceil(delay / 1000) + " s");
    timer = setTimeout(connect, delay);
  }

  reconnectBtn.addEventListener("click", () => { attempt = 0; connect(); input.focus(); });

  // ---- typed lines -----------------------------------------------------------

  const HELP = [
    "/nick NAME         change your nick",
    "/join ROOM         move to a room (made if new)",
    "/msg NICK TEXT     private message",
    "/me TEXT           action",
    "/who               who is in the room",
    "/rooms             list rooms",
    "/history [N]       the last N messages",
    "/quit [REASON]     leave",
    "//text             say text starting with /",
  ];

  function splitWord(s) {
    const t = s.trim();
    const i = t.search(/\s/);
    return i < 0 ? [t, ""] : [t.slice(0, i), t.slice(i).trim()];
  }

  // A typed line -> a command object, or a string: an error to show locally.
  function parse(lineText) {
    if (!lineText.startsWith("/") || lineText.startsWith("//")) {
      const t = lineText.startsWith("//") ? lineText.slice(1) : lineText;
      return { type: "say", text: t };
    }
    const [cmd, rest] = splitWord(lineText.slice(1));
    switch (cmd.toLowerCase()) {
      case "nick": return rest ? { type: "nick", nick: rest } : "usage: /nick NAME";
      case "join": return rest ? { type: "join", room: rest } : "usage: /join ROOM";
      case "msg": {
        const [to, t] = splitWord(rest);
        return to && t ? { type: "msg", to: to, text: t } : "usage: /msg NICK TEXT";
      }
      case "me": return rest ? { type: "me", text: rest } : "usage: /me TEXT";
      case "who": return { type: "who" };
      case "rooms": return { type: "rooms" };
      case "history": {
        if (!rest) return { type: "history" };
        const n = Number(rest);
        return Number.isInteger(n) && n >= 0 ? { type: "history", n: n } : "usage: /history [N]";
      }
      case "quit": return rest ? { type: "quit", reason: rest } : { type: "quit" };
      case "help": return null;
      default: return "unknown command /" + cmd + " (try /help)";
    }
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const value = input.value;
    if (!value.trim()) return;
    typed.push(value);
    if (typed.length > 100) typed.shift();
    typedAt = typed.length;
    const cmd = parse(value);
    if (cmd === null) {
      for (const h of HELP) local(h);
    } else if (typeof cmd === "string") {
      localError(cmd);
      return; // keep the line for fixing
    } else {
      if (cmd.type === "quit") stopped = true;
      if (!send(cmd)) { localError("not connected: nothing sent"); return; }
    }
    input.value = "";
  });

  // Up and Down recall typed lines, as in a terminal.
  input.addEventListener("keydown", (e) => {
    if (e.key === "ArrowUp" && typedAt > 0) {
      typedAt--; input.value = typed[typedAt]; e.preventDefault();
    } else if (e.key === "ArrowDown" && typedAt < typed.length) {
      typedAt++; input.value = typed[typedAt] || ""; e.preventDefault();
    }
  });

  setMe(me, false);
  setRoom(room);
  input.focus();
  connect();
})();
