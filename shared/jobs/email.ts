import { z } from "zod";
import { defineJob } from "./contract.ts";

const address = z.email().max(320);
const addresses = z.union([address, z.array(address).min(1).max(50)]);

/** An email to send, as accepted by `POST /v1/emails`. Exactly one of html, text, template. */
export const EmailRequest = z
  .strictObject({
    to: addresses,
    subject: z.string().min(1).max(998),
    html: z.string().min(1).max(512_000).optional(),
    text: z.string().min(1).max(512_000).optional(),
    template: z
      .strictObject({
        name: z.string().min(1).max(100),
        data: z.record(z.string(), z.json()).default({}),
      })
      .optional(),
    from: z.string().min(3).max(320).optional(),
    replyTo: addresses.optional(),
    cc: addresses.optional(),
    bcc: addresses.optional(),
    tags: z
      .array(
        z.strictObject({
          name: z.string().regex(/^[A-Za-z0-9_-]{1,256}$/),
          value: z.string().regex(/^[A-Za-z0-9_-]{1,256}$/),
        }),
      )
      .max(20)
      .optional(),
  })
  .superRefine((email, ctx) => {
    const bodies = [email.html, email.text, email.template].filter((b) => b !== undefined);
    if (bodies.length !== 1) {
      ctx.addIssue({
        code: "custom",
        path: ["html"],
        message: "exactly one of html, text or template is required",
      });
    }
  });
export type EmailRequest = z.infer<typeof EmailRequest>;

export const emailContract = defineJob({
  queue: "email",
  name: "send-email",
  schema: EmailRequest,
  defaults: {
    attempts: 3,
    backoff: { type: "exponential", delay: 1000 },
    removeOnComplete: 100,
    removeOnFail: 1000,
  },
});
