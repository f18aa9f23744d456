"""A small SMTP server for tests, on 127.0.0.1: it accepts every message and keeps it.

    with SmtpSink() as sink:
        ...  # send mail to sink.port
        message = sink.wait_for_message()

It speaks enough of RFC 5321 (EHLO/HELO, AUTH PLAIN/LOGIN accepted, MAIL, RCPT, DATA,
RSET, NOOP, QUIT) for Django's SMTP backend, without TLS.
"""

from __future__ import annotations

import email
import email.policy
import socketserver
import threading
import time
from email.message import EmailMessage


class _Handler(socketserver.StreamRequestHandler):
    def reply(self, line: str) -> None:
        self.wfile.write(f"{line}\r\n".encode())

    def handle(self) -> None:
        self.reply("220 sink ready")
        sender, recipients = None, []
        while line := self.rfile.readline():
            command = line.decode().strip()
            verb = command.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.wfile.write(b"250-sink\r\n250 AUTH PLAIN LOGIN\r\n")
            elif verb == "AUTH":
                self.server.sink.logins.append(command)
                self.reply("235 accepted")
            elif verb == "MAIL":
                sender, recipients = command.split(":", 1)[1].strip(" <>"), []
                self.reply("250 ok")
            elif verb == "RCPT":
                recipients.append(command.split(":", 1)[1].strip(" <>"))
                self.reply("250 ok")
            elif verb == "DATA":
                self.reply("354 go on")
                self.server.sink.received(sender, recipients, self._read_data())
                self.reply("250 kept")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:  # HELO, RSET, NOOP
                self.reply("250 ok")

    def _read_data(self) -> bytes:
        lines = []
        while (line := self.rfile.readline()) not in (b".\r\n", b""):
            lines.append(line[1:] if line.startswith(b"..") else line)
        return b"".join(lines)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class SmtpSink:
    def __init__(self):
        self.messages: list[EmailMessage] = []
        self.logins: list[str] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.sink = self
        self.port = self._server.server_address[1]
        self._lock = threading.Lock()

    def received(self, sender: str, recipients: list[str], data: bytes) -> None:
        message = email.message_from_bytes(data, policy=email.policy.default)
        message["X-Sink-Recipients"] = ", ".join(recipients)
        with self._lock:
            self.messages.append(message)

    def wait_for_message(self, timeout: float = 15) -> EmailMessage:
        """The first message received; fails after `timeout` seconds without one."""
        deadline = time.monotonic() + timeout
        while not self.messages:
            assert time.monotonic() < deadline, "no e-mail arrived"
            time.sleep(0.05)
        return self.messages[0]

    def __enter__(self) -> SmtpSink:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
