import { z } from "zod";
import { PermanentError } from "../runner.ts";

/**
 * Built-in email templates. A template turns `template.data` into html and text bodies; the
 * subject stays the caller's (the email contract requires one). Every interpolated value goes
 * through `escapeHtml` in the html body, and links must be http(s) so a caller can't smuggle a
 * `javascript:` URL into an email.
 */

export interface RenderedBody {
  html: string;
  text: string;
}

interface Template<S extends z.ZodType> {
  data: S;
  render(data: z.output<S>): RenderedBody;
}

function defineTemplate<S extends z.ZodType>(template: Template<S>): Template<S> {
  return template;
}

const httpUrl = z.url({ protocol: /^https?$/ });

export function escapeHtml(value: string): string {
  return value
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

function layout(body: string): string {
  return `<!doctype html><html><body style="font-family:sans-serif;line-height:1.5">${body}</body></html>`;
}

const templates = {
  welcome: defineTemplate({
    data: z.object({
      name: z.string().min(1).max(200),
      appName: z.string().min(1).max(100).default("edgefleet"),
      loginUrl: httpUrl.optional(),
    }),
    render: ({ name, appName, loginUrl }) => ({
      html: layout(
        `<h1>Welcome to ${escapeHtml(appName)}, ${escapeHtml(name)}!</h1>` +
          (loginUrl ? `<p><a href="${escapeHtml(loginUrl)}">Sign in</a></p>` : ""),
      ),
      text: `Welcome to ${appName}, ${name}!` + (loginUrl ? `\n\nSign in: ${loginUrl}` : ""),
    }),
  }),
  "password-reset": defineTemplate({
    data: z.object({
      name: z.string().min(1).max(200).optional(),
      resetUrl: httpUrl,
      expiresInMinutes: z.number().int().positive().default(60),
    }),
    render: ({ name, resetUrl, expiresInMinutes }) => ({
      html: layout(
        `<p>Hi${name ? ` ${escapeHtml(name)}` : ""},</p>` +
          `<p>Reset your password: <a href="${escapeHtml(resetUrl)}">${escapeHtml(resetUrl)}</a></p>` +
          `<p>The link expires in ${expiresInMinutes} minutes. If you did not ask for it, ignore this email.</p>`,
      ),
      text:
        `Hi${name ? ` ${name}` : ""},\n\nReset your password: ${resetUrl}\n\n` +
        `The link expires in ${expiresInMinutes} minutes. If you did not ask for it, ignore this email.`,
    }),
  }),
} as const;

export type TemplateName = keyof typeof templates;
export const TEMPLATE_NAMES = Object.keys(templates) as TemplateName[];

function isTemplateName(name: string): name is TemplateName {
  return Object.hasOwn(templates, name);
}

/**
 * Unknown template or data that doesn't fit it can't succeed on retry: `PermanentError`. The messages
 * name fields and expectations, never the caller's values (not even an unknown template's name):
 * they reach logs and `failedReason`.
 */
export function renderTemplate(name: string, data: Record<string, unknown>): RenderedBody {
  if (!isTemplateName(name)) {
    throw new PermanentError(`unknown email template (known: ${TEMPLATE_NAMES.join(", ")})`);
  }
  const template: Template<z.ZodType<unknown>> = templates[name] as Template<z.ZodType<unknown>>;
  const parsed = template.data.safeParse(data);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new PermanentError(`invalid data for email template "${name}": ${issues.join("; ")}`);
  }
  return template.render(parsed.data);
}
